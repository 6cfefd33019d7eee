"""CloudFormation custom resource: copy the token settings hosts need into this region's SSM.

Timeline hosts verify ID tokens themselves and have no route to the internet or to another
region. At deploy time this function (outside the VPC) reads where the user pool is from the
primary region, fetches the pool's signing keys, and writes issuer, audience and keys to an
SSM parameter in its own region, which hosts read through their VPC endpoint.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Callable
from typing import Any

from aviary import clients

logger = logging.getLogger()
logger.setLevel(logging.INFO)

_FETCH_TIMEOUT_SECONDS = 5


class PublishError(Exception):
    """The settings could not be built; the deploy fails with this message."""


def build_token_settings(location: dict[str, Any], fetch_json: Callable[[str], Any]) -> dict[str, Any]:
    """Issuer, audience and signing keys of the user pool that `location` names."""
    try:
        issuer = f"https://cognito-idp.{location['region']}.amazonaws.com/{location['userPoolId']}"
        audience = location["clientId"]
    except (KeyError, TypeError) as missing:
        raise PublishError(f"user pool parameter lacks {missing}") from None
    jwks = fetch_json(f"{issuer}/.well-known/jwks.json")
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not keys or not all(isinstance(k, dict) and {"kid", "kty", "n", "e"} <= k.keys() for k in keys):
        raise PublishError(f"{issuer} returned no usable RSA signing keys")
    return {"issuer": issuer, "audience": audience, "jwks": {"keys": keys}}


def publish(
    properties: dict[str, Any], ssm_for: Callable[[str], Any], fetch_json: Callable[[str], Any]
) -> str:
    """Read the pool location in the primary region, write the settings here; returns their name."""
    primary = ssm_for(properties["PrimaryRegion"])
    raw = primary.get_parameter(Name=properties["UserPoolParameter"])["Parameter"]["Value"]
    settings = build_token_settings(json.loads(raw), fetch_json)
    target = properties["TokenSettingsParameter"]
    ssm_for(None).put_parameter(Name=target, Value=json.dumps(settings), Type="String", Overwrite=True)
    return settings


def _fetch_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=_FETCH_TIMEOUT_SECONDS) as response:
        return json.load(response)


def _ssm_for(region: str | None) -> Any:
    return clients.client("ssm", region=region)


def _respond(
    event: dict[str, Any], status: str, physical_id: str, reason: str = "", data: dict[str, str] | None = None
) -> None:
    body = json.dumps(
        {
            "Data": data or {},
            "Status": status,
            "Reason": reason[:1000],
            "PhysicalResourceId": physical_id,
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
        }
    ).encode()
    request = urllib.request.Request(
        event["ResponseURL"], data=body, method="PUT", headers={"Content-Type": ""}
    )
    with urllib.request.urlopen(request, timeout=_FETCH_TIMEOUT_SECONDS):
        pass


def handler(
    event: dict[str, Any], _context: Any, *, respond=_respond, ssm_for=_ssm_for, fetch_json=_fetch_json
) -> None:
    properties = event["ResourceProperties"]
    physical_id = event.get("PhysicalResourceId") or properties["TokenSettingsParameter"]
    try:
        if event["RequestType"] in ("Create", "Update"):
            settings = publish(properties, ssm_for, fetch_json)
            physical_id = properties["TokenSettingsParameter"]
            # The region's API Gateway JWT authorizer takes issuer and audience from here.
            respond(
                event,
                "SUCCESS",
                physical_id,
                data={"Issuer": settings["issuer"], "Audience": settings["audience"]},
            )
            return
        # Delete: the parameter stays; hosts that outlive the stack keep verifying tokens.
        respond(event, "SUCCESS", physical_id)
    except Exception as error:  # the deploy must hear of every failure, or it hangs for an hour
        logger.exception("token settings not published")
        respond(event, "FAILED", physical_id, f"{type(error).__name__}: {error}")
