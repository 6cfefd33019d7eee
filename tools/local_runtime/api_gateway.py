"""A stand-in for one region's HTTP API: JWT authorizer, route match, payload 2.0 event, handler.

Requests a real HTTP API would refuse before any handler runs get its answers: 404 `{"message":
"Not Found"}` for an unknown route, 401 `{"message":"Unauthorized"}` for a missing or invalid ID
token. Everything else reaches the same handler function the route's Lambda runs.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

import jwt
from aiohttp import web

from aviary.auth import TokenVerifier
from aviary.errors import AviaryError

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

# Content types API Gateway passes as text; any other body arrives base64-encoded.
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript", "+json", "+xml")
_PARAMETER = re.compile(r"\{([A-Za-z0-9_]+)\}")


@dataclass(frozen=True)
class Route:
    key: str  # "POST /tweets/{id}/like"
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    context: Callable[[], Any]
    timeout_seconds: float


def route(key: str, handler: Handler, context: Callable[[], Any], timeout_seconds: float) -> Route:
    method, _, template = key.partition(" ")
    # A {parameter} is one whole path segment, as in API Gateway.
    pattern = "".join(
        f"(?P<{part[1:-1]}>[^/]+)" if _PARAMETER.fullmatch(part) else re.escape(part)
        for part in re.split(r"(\{[A-Za-z0-9_]+\})", template)
    )
    return Route(key, method, re.compile(pattern), handler, context, timeout_seconds)


def _message(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response({"message": message}, status=status, headers=headers)


class LocalHttpApi:
    """Serves `routes` on an aiohttp app; handlers run in threads, as each Lambda runs on its own."""

    def __init__(self, routes: list[Route], verifier: TokenVerifier, *, region: str, account: str) -> None:
        self.routes = routes
        self.verifier = verifier
        self.region = region
        self.account = account

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for candidate in self.routes:
            found = candidate.pattern.fullmatch(path)
            if found and candidate.method == method:
                return candidate, {name: unquote(value) for name, value in found.groupdict().items()}
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        request_id = base64.b64encode(uuid.uuid4().bytes[:10]).decode()
        # Matched on the path as sent: each parameter is percent-decoded once, as API Gateway does.
        matched = self.match(request.method, request.rel_url.raw_path)
        if matched is None:
            return _message(404, "Not Found", {"apigw-requestid": request_id})
        found, path_parameters = matched
        claims = self._claims(request.headers.get("Authorization"))
        if claims is None:
            return _message(
                401,
                "Unauthorized",
                {"www-authenticate": 'Bearer error="invalid_token"', "apigw-requestid": request_id},
            )
        event = await self._event(request, found, path_parameters, claims, request_id)
        loop = asyncio.get_running_loop()
        try:
            response = await asyncio.wait_for(
                loop.run_in_executor(None, found.handler, event, found.context()), found.timeout_seconds
            )
        except TimeoutError:
            return _message(503, "Service Unavailable", {"apigw-requestid": request_id})
        except Exception:
            return _message(500, "Internal Server Error", {"apigw-requestid": request_id})
        return _http_response(response, request_id)

    def _claims(self, authorization: str | None) -> dict[str, str] | None:
        """The verified ID token's claims, stringified as the JWT authorizer passes them; None if refused."""
        try:
            self.verifier.caller_from_authorization(authorization)
        except AviaryError:
            return None
        token = (authorization or "").strip().partition(" ")[2].strip()
        # Verified just above (signature, issuer, audience, expiry): reading its claims is safe.
        claims = jwt.decode(token, options={"verify_signature": False})
        return {name: value if isinstance(value, str) else str(value) for name, value in claims.items()}

    async def _event(
        self,
        request: web.Request,
        found: Route,
        path_parameters: dict[str, str],
        claims: dict[str, str],
        request_id: str,
    ) -> dict[str, Any]:
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            lower = name.lower()
            headers[lower] = f"{headers[lower]},{value}" if lower in headers else value
        raw_query = request.rel_url.raw_query_string
        now_ms = time.time_ns() // 1_000_000
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": found.key,
            "rawPath": request.rel_url.raw_path,
            "rawQueryString": raw_query,
            "headers": headers,
            "requestContext": {
                "accountId": self.account,
                "apiId": "local",
                "authorizer": {"jwt": {"claims": claims, "scopes": None}},
                "domainName": request.host,
                "domainPrefix": request.host.split(".")[0],
                "http": {
                    "method": request.method,
                    "path": request.path,
                    "protocol": f"HTTP/{request.version.major}.{request.version.minor}",
                    "sourceIp": request.remote or "127.0.0.1",
                    "userAgent": request.headers.get("User-Agent", ""),
                },
                "requestId": request_id,
                "routeKey": found.key,
                "stage": "$default",
                "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now_ms / 1000)),
                "timeEpoch": now_ms,
            },
            "isBase64Encoded": False,
        }
        if raw_query:
            query: dict[str, str] = {}
            for name, value in parse_qsl(raw_query, keep_blank_values=True):
                query[name] = f"{query[name]},{value}" if name in query else value
            event["queryStringParameters"] = query
        if path_parameters:
            event["pathParameters"] = path_parameters
        body = await request.read()
        if body:
            content_type = request.headers.get("Content-Type", "").lower()
            if any(marker in content_type for marker in _TEXT_TYPES):
                try:
                    event["body"] = body.decode("utf-8")
                except UnicodeDecodeError:
                    event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
            else:
                event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
        return event


def _http_response(response: Any, request_id: str) -> web.Response:
    """A payload 2.0 handler result as an HTTP response, the way API Gateway maps it."""
    if not isinstance(response, dict) or "statusCode" not in response:
        # A bare value: API Gateway answers 200 with it as JSON.
        return web.json_response(response, headers={"apigw-requestid": request_id})
    headers = {str(k): str(v) for k, v in (response.get("headers") or {}).items()}
    headers["apigw-requestid"] = request_id
    body = response.get("body") or ""
    payload = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode("utf-8")
    return web.Response(status=int(response["statusCode"]), body=payload, headers=headers)
