"""Copy the token settings hosts need into this region's SSM, at deploy time and on a schedule.

Timeline hosts verify ID tokens themselves and have no route to the internet or to another
region. This function (outside the VPC) reads where the user pool is from this region's own copy
of the pool's location, fetches the pool's signing keys from its issuer, and writes issuer,
audience and keys to an SSM parameter in this region, which hosts read through their VPC endpoint.

It never asks another region's SSM: a recovery deploy of one region succeeds while the primary is
unreachable. At deploy time, a key fetch that fails keeps the settings already published (the
deploy succeeds with them); on the schedule it fails the run, so the function's errors show it,
and still leaves them in place. The schedule is what carries Cognito's key rotations to hosts.

At deploy time CDK's custom-resource provider framework invokes the handler and answers
CloudFormation: with the returned physical ID and data, or with the message of what it raised.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger

from aviary import clients

logger = Logger(service="token-settings")

_FETCH_TIMEOUT_SECONDS = 5


class PublishError(Exception):
    """The settings could not be published; the deploy fails with this message."""


def issuer_of(location: dict[str, Any]) -> str:
    """The issuer the pool's tokens carry: the location says it (prod's multi-Region issuer), else
    the original per-region one (the local stage's moto pool)."""
    try:
        return location.get("issuer") or (
            f"https://cognito-idp.{location['region']}.amazonaws.com/{location['userPoolId']}"
        )
    except (KeyError, TypeError, AttributeError) as missing:
        raise PublishError(f"user pool parameter lacks {missing}") from None


def build_token_settings(location: dict[str, Any], fetch_json: Callable[[str], Any]) -> dict[str, Any]:
    """Issuer, audience and signing keys of the user pool that `location` names."""
    issuer = issuer_of(location)
    try:
        audience = location["clientId"]
    except (KeyError, TypeError) as missing:
        raise PublishError(f"user pool parameter lacks {missing}") from None
    jwks = fetch_json(f"{issuer}/.well-known/jwks.json")
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not keys or not all(isinstance(k, dict) and {"kid", "kty", "n", "e"} <= k.keys() for k in keys):
        raise PublishError(f"{issuer} returned no usable RSA signing keys")
    return {"issuer": issuer, "audience": audience, "jwks": {"keys": keys}}


def publish(
    properties: dict[str, Any],
    ssm: Any,
    fetch_json: Callable[[str], Any],
    *,
    keep_published_on_failure: bool,
    log: logging.Logger | Logger = logger,
) -> dict[str, Any]:
    """Read the pool location in this region, write the settings here; returns the settings.

    A failed key fetch keeps what is published when `keep_published_on_failure` (and re-raises
    when nothing is). What it did goes to `log` (the function's own log unless a caller, such as the
    local stage, keeps one of its own).
    """
    raw = ssm.get_parameter(Name=properties["UserPoolParameter"])["Parameter"]["Value"]
    location = json.loads(raw)
    target = properties["TokenSettingsParameter"]
    try:
        settings = build_token_settings(location, fetch_json)
    except Exception as error:
        published = _published(ssm, target) if keep_published_on_failure else None
        if published is None or published.get("issuer") != issuer_of(location):
            raise
        log.warning("signing keys not fetched (%s); keeping the settings published in %s", error, target)
        return published
    text = json.dumps(settings)
    if _published(ssm, target) != settings:
        ssm.put_parameter(Name=target, Value=text, Type="String", Overwrite=True)
        log.info("published %d signing keys to %s", len(settings["jwks"]["keys"]), target)
    return settings


def _published(ssm: Any, name: str) -> dict[str, Any] | None:
    try:
        return json.loads(ssm.get_parameter(Name=name)["Parameter"]["Value"])
    except ssm.exceptions.ParameterNotFound:
        return None


def _fetch_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=_FETCH_TIMEOUT_SECONDS) as response:
        return json.load(response)


def _ssm() -> Any:
    return clients.client("ssm")  # this function's own region, with the shared short timeouts


@logger.inject_lambda_context(clear_state=True)
def handler(
    event: dict[str, Any], _context: Any, *, ssm_for: Callable[[], Any] | None = None, fetch_json=_fetch_json
) -> dict[str, Any] | None:
    """The schedule's run (its input is the custom resource's properties) or a custom-resource event
    from CDK's provider framework, which answers CloudFormation with what this returns or raises."""
    if "RequestType" not in event:
        # The schedule: a failure raises, so the function's errors show it.
        publish(event, (ssm_for or _ssm)(), fetch_json, keep_published_on_failure=False)
        return None
    properties = event["ResourceProperties"]
    if event["RequestType"] == "Delete":
        # The parameter stays: hosts that outlive the stack keep verifying tokens.
        return {"PhysicalResourceId": event["PhysicalResourceId"]}
    try:
        settings = publish(properties, (ssm_for or _ssm)(), fetch_json, keep_published_on_failure=True)
    except PublishError:
        raise
    except Exception as error:
        # The framework gives CloudFormation the message alone as the failure's reason: name the error.
        raise PublishError(f"{type(error).__name__}: {error}") from error
    return {
        "PhysicalResourceId": properties["TokenSettingsParameter"],
        # The region's API Gateway JWT authorizer takes issuer and audience from here.
        "Data": {"Issuer": settings["issuer"], "Audience": settings["audience"]},
    }
