"""The local user pool, the token settings every region verifies with, and demo users' tokens.

moto's CloudFormation cannot create Cognito user pools, so the local deploy creates the pool the
template describes through the Cognito API instead, then runs the same publisher code that copies
issuer, audience and signing keys into each region in prod.
"""

from __future__ import annotations

import contextlib
import json
import logging
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import jwt

from aviary import naming
from aviary.caller import Caller
from aviary.handles import Handles
from lambda_functions.token_settings.publisher import publish
from tools.local_runtime.settings import LocalSettings

log = logging.getLogger("aviary.local.identity")

POOL_NAME = "aviary-local-users"
CLIENT_NAME = "aviary-local-api"
# Local demo accounts only: moto holds them in memory and they guard nothing.
DEMO_PASSWORD = "Local-Demo-Passw0rd!"


def ensure_user_pool(settings: LocalSettings, cognito: Any, primary_ssm: Any) -> dict[str, str]:
    """The pool and app client (created once), recorded where the stacks record them in prod."""
    pools = cognito.list_user_pools(MaxResults=60)["UserPools"]
    pool_id = next((p["Id"] for p in pools if p["Name"] == POOL_NAME), None)
    if pool_id is None:
        pool_id = cognito.create_user_pool(
            PoolName=POOL_NAME,
            UsernameConfiguration={"CaseSensitive": False},
            Policies={
                "PasswordPolicy": {
                    "MinimumLength": 12,
                    "RequireUppercase": True,
                    "RequireLowercase": True,
                    "RequireNumbers": True,
                    "RequireSymbols": True,
                }
            },
        )["UserPool"]["Id"]
    clients = cognito.list_user_pool_clients(UserPoolId=pool_id, MaxResults=60)["UserPoolClients"]
    client_id = next((c["ClientId"] for c in clients if c["ClientName"] == CLIENT_NAME), None)
    if client_id is None:
        client_id = cognito.create_user_pool_client(
            UserPoolId=pool_id,
            ClientName=CLIENT_NAME,
            GenerateSecret=False,
            ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        )["UserPoolClient"]["ClientId"]
    location = {"region": settings.primary_region, "userPoolId": pool_id, "clientId": client_id}
    primary_ssm.put_parameter(
        Name=naming.USER_POOL_PARAMETER, Value=json.dumps(location), Type="String", Overwrite=True
    )
    return location


def publish_token_settings(settings: LocalSettings, ssm_for: Any) -> None:
    """Every region's /aviary/identity/token-settings, by the prod publisher's own code.

    In prod the primary region's data stack copies the pool's location into every region and each
    region publishes from its own copy; here one moto pool serves them all (moto cannot replicate
    a pool), so this copies the location, then publishes in each region.
    """
    location = ssm_for(settings.primary_region).get_parameter(Name=naming.USER_POOL_PARAMETER)["Parameter"]
    for region in settings.regions:
        ssm = ssm_for(region)
        if region != settings.primary_region:
            ssm.put_parameter(
                Name=naming.USER_POOL_PARAMETER, Value=location["Value"], Type="String", Overwrite=True
            )
        publish(
            {
                "Region": region,
                "UserPoolParameter": naming.USER_POOL_PARAMETER,
                "TokenSettingsParameter": naming.TOKEN_SETTINGS_PARAMETER,
            },
            ssm,
            lambda url: _fetch_from_moto(settings, url),
            keep_published_on_failure=False,
            log=log,
        )


def _fetch_from_moto(settings: LocalSettings, url: str) -> Any:
    # The issuer is Cognito's public URL; moto serves the same path under its own endpoint.
    with urllib.request.urlopen(settings.endpoint + urlsplit(url).path, timeout=5) as response:
        return json.load(response)


def id_token(cognito: Any, location: dict[str, str], username: str) -> str:
    """An ID token for the demo user signed up as `username` (exactly as spelled), signing them up
    first if they are new."""
    with contextlib.suppress(cognito.exceptions.UsernameExistsException):
        cognito.admin_create_user(
            UserPoolId=location["userPoolId"],
            Username=username,
            TemporaryPassword=DEMO_PASSWORD,
            MessageAction="SUPPRESS",
        )
    cognito.admin_set_user_password(
        UserPoolId=location["userPoolId"], Username=username, Password=DEMO_PASSWORD, Permanent=True
    )
    result = cognito.initiate_auth(
        ClientId=location["clientId"],
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": username, "PASSWORD": DEMO_PASSWORD},
    )["AuthenticationResult"]
    return result["IdToken"]


def caller_of(token: str) -> Caller:
    """Who a token the local pool issued names (user ID and handle), read without verifying it:
    for tools and tests that hold their own tokens, never for a request."""
    return Caller.of(jwt.decode(token, options={"verify_signature": False}))


def claim_handle(handles: Handles, token: str) -> None:
    """Claim the signed-in user's handle, as the write API does on their first request."""
    caller = caller_of(token)
    if caller.handle is not None:
        handles.claim(caller.user_id, caller.handle)


def user_pool_location(primary_ssm: Any) -> dict[str, str]:
    return json.loads(primary_ssm.get_parameter(Name=naming.USER_POOL_PARAMETER)["Parameter"]["Value"])
