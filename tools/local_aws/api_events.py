"""API Gateway HTTP API (payload format 2.0) events, shaped as a JWT-authorized route delivers them:
for tests of the handlers, and for the fault drill, which calls the API routes without an HTTP server."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

REGION = "us-east-1"
ACCOUNT = "123456789012"
API_ID = "a1b2c3d4e5"
USER_POOL_ID = f"{REGION}_AbCdEfGhI"
CLIENT_ID = "4tq1n8dn5pv5r1bd0fnfqr7d5e"
USERNAME_CLAIM = "cognito:username"
TIME_EPOCH_MS = 1_795_000_000_000


class _Missing:
    def __repr__(self) -> str:
        return "NO_BODY"


NO_BODY: Any = _Missing()  # the request carries no body at all (body is absent, not JSON null)
NO_USER: Any = _Missing()  # the route has no JWT claims (an unauthenticated event)


def user_id(username: str) -> str:
    """The `sub` of the test account signed up as `username` (a UUID, as Cognito's are): one account
    per spelling, so "Alice" and "alice" are two accounts, as two sign-ups would be."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"aviary-test-user:{username}"))


def jwt_claims(username: Any) -> dict[str, Any]:
    """The ID-token claims the JWT authorizer passes on, with `username` as cognito:username and
    the account's own `sub`."""
    return {
        "aud": CLIENT_ID,
        "auth_time": str(TIME_EPOCH_MS // 1000 - 60),
        USERNAME_CLAIM: username,
        "email_verified": "true",
        "event_id": "5d2b4f0e-4e4f-4b5d-9d42-2a1c0e8d6c1f",
        "exp": str(TIME_EPOCH_MS // 1000 + 3600),
        "iat": str(TIME_EPOCH_MS // 1000 - 60),
        "iss": f"https://cognito-idp.{REGION}.amazonaws.com/{USER_POOL_ID}",
        "sub": user_id(username) if isinstance(username, str) else "3f1c2d4e-8a9b-4c7d-9e0f-1a2b3c4d5e6f",
        "token_use": "id",
    }


def raw_path_of(route_key: str, path: Mapping[str, Any] | None) -> str:
    """The route's path with its {parameters} filled in (percent-encoded, as the client sent them)."""
    _method, _, template = route_key.partition(" ")
    for name, value in (path or {}).items():
        template = template.replace("{" + name + "}", quote(str(value), safe="", errors="surrogatepass"))
    return template or "/"


def api_event(
    route_key: str,
    *,
    user: Any = "alice",
    path: Mapping[str, Any] | None = None,
    body: Any = NO_BODY,
    raw_body: str | None = None,
    headers: Mapping[str, Any] | None = None,
    base64_body: bool = False,
    is_base64_encoded: bool | None = None,
    claims: Mapping[str, Any] | None = None,
    request_id: str = "JkHSuhYQoAMEPaw=",
) -> dict[str, Any]:
    """One payload-2.0 event.

    body is a JSON value sent as JSON text; raw_body is sent exactly as given (use one or neither).
    base64_body sends the body base64-encoded with isBase64Encoded set, as binary media types arrive;
    is_base64_encoded sets the flag alone (e.g. on a body that is not base64 at all).
    user is the cognito:username claim (NO_USER for no authorizer context); claims replaces all claims.
    Header names are lower-cased, as HTTP APIs deliver them; a header given as None is left out.
    """
    if body is not NO_BODY and raw_body is not None:
        raise ValueError("give body or raw_body, not both")
    text = raw_body if body is NO_BODY else json.dumps(body)
    if text is not None and base64_body:
        text = base64.b64encode(text.encode("utf-8", errors="surrogatepass")).decode("ascii")
    method, _, _template = route_key.partition(" ")
    raw_path = raw_path_of(route_key, path)
    all_headers: dict[str, Any] = {
        "accept": "application/json",
        "content-length": str(len(text or "")),
        "content-type": "application/json",
        "host": f"{API_ID}.execute-api.{REGION}.amazonaws.com",
        "user-agent": "aviary-tests/1.0",
        "x-amzn-trace-id": "Root=1-6565a0f0-0123456789abcdef01234567",
        "x-forwarded-for": "203.0.113.7",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    }
    if user is not NO_USER or claims is not None:
        all_headers["authorization"] = "Bearer eyJraWQiOiJrMSIsImFsZyI6IlJTMjU2In0.e30.c2ln"
    all_headers.update({str(name).lower(): value for name, value in (headers or {}).items()})
    all_headers = {name: value for name, value in all_headers.items() if value is not None}
    request_context: dict[str, Any] = {
        "accountId": ACCOUNT,
        "apiId": API_ID,
        "domainName": f"{API_ID}.execute-api.{REGION}.amazonaws.com",
        "domainPrefix": API_ID,
        "http": {
            "method": method,
            "path": raw_path,
            "protocol": "HTTP/1.1",
            "sourceIp": "203.0.113.7",
            "userAgent": "aviary-tests/1.0",
        },
        "requestId": request_id,
        "routeKey": route_key,
        "stage": "$default",
        "time": "19/Nov/2026:10:13:20 +0000",
        "timeEpoch": TIME_EPOCH_MS,
    }
    if claims is not None:
        request_context["authorizer"] = {"jwt": {"claims": dict(claims), "scopes": None}}
    elif user is not NO_USER:
        request_context["authorizer"] = {"jwt": {"claims": jwt_claims(user), "scopes": None}}
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": "",
        "headers": all_headers,
        "requestContext": request_context,
        "isBase64Encoded": (
            bool(base64_body and text is not None) if is_base64_encoded is None else is_base64_encoded
        ),
    }
    if path is not None:
        event["pathParameters"] = dict(path)
    if text is not None:
        event["body"] = text
    return event
