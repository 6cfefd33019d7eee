"""HTTP API (payload format 2.0) events in, JSON responses out: what every route group shares.

The caller is whoever the JWT authorizer says signed in: the token's `sub`, the user ID (never the
username's spelling, which only names the handle the caller claims). A route never takes the
acting user from the path or the body, so nobody can act as someone else.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

from aviary import clients, validation
from aviary.caller import Caller
from aviary.errors import (
    AviaryError,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
    UnsupportedMediaType,
    ValidationError,
)
from aviary.handles import Handles
from lambda_functions.api.routes import BODY_ROUTES

# DynamoDB answers that mean "slow down / try again", not "your request is wrong".
_RETRYABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TransactionConflictException",
        "TransactionInProgressException",
        "InternalServerError",
        "ServiceUnavailable",
    }
)


@dataclass(frozen=True)
class ApiRequest:
    route_key: str  # e.g. "POST /tweets/{id}/like"
    caller: str  # the signed-in user's ID (the token's sub)
    handle: str | None  # the handle the signed-in user claims (their username, lower-cased)
    path: Mapping[str, str]
    headers: Mapping[str, str]  # names lower-cased, as HTTP APIs deliver them
    body: str | None

    def json_body(self, allowed: set[str]) -> dict[str, Any]:
        """The body as a JSON object with no keys but `allowed` (ValidationError otherwise)."""
        body = validation.json_object_body(self.body)
        validation.known_fields(body, allowed)
        return body


@cache
def handle_registry(social_graph_table: str) -> Handles:
    """The handle registry over this region's social-graph table, built once per process."""
    return Handles(clients.client("dynamodb"), social_graph_table)


Response = tuple[int, Any] | tuple[int, Any, Mapping[str, str]]
Route = Callable[[ApiRequest], Response]


def parse_request(event: Mapping[str, Any]) -> ApiRequest:
    context = event.get("requestContext") or {}
    claims = ((context.get("authorizer") or {}).get("jwt") or {}).get("claims") or {}
    if not claims:
        raise Unauthorized(
            "No signed-in user: send 'Authorization: Bearer <ID token>'.", field="Authorization"
        )
    caller = Caller.of(claims)
    body = event.get("body")
    if body is not None and event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(body, validate=True).decode("utf-8")
        except ValueError:
            # binascii.Error (bad base64), UnicodeDecodeError (not UTF-8), and the plain ValueError
            # b64decode raises for a str with non-ASCII characters in it.
            raise ValidationError("The body must be base64-encoded UTF-8 JSON.", field="body") from None
    return ApiRequest(
        route_key=str(event.get("routeKey", "")),
        caller=caller.user_id,
        handle=caller.handle,
        path=event.get("pathParameters") or {},
        headers={str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()},
        body=body,
    )


def check_body_kind(request: ApiRequest) -> None:
    """A route that takes a body takes JSON (415 otherwise); a route that takes none refuses one."""
    if request.route_key in BODY_ROUTES:
        media_type, *parameters = request.headers.get("content-type", "").split(";")
        charset = {
            name.strip().lower(): value.strip().strip('"').lower()
            for name, _, value in (parameter.partition("=") for parameter in parameters)
        }.get("charset", "utf-8")
        if media_type.strip().lower() != "application/json" or charset != "utf-8":
            raise UnsupportedMediaType(
                f"{request.route_key} takes a JSON body: send it with 'Content-Type: application/json' "
                f"(UTF-8), not {validation.shown(request.headers.get('content-type', '(none)'))}.",
                field="Content-Type",
            )
    elif request.body:
        raise ValidationError(
            f"{request.route_key} takes no body; send the request without one.", field="body"
        )


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", **(headers or {})},
        "body": "" if body is None else json.dumps(body, ensure_ascii=False, separators=(",", ":")),
    }


def error_response(error: AviaryError) -> dict[str, Any]:
    headers = {}
    if isinstance(error, ServiceUnavailable):
        headers["retry-after"] = str(error.retry_after_seconds)
    return json_response(error.http_status, error.to_body(), headers)


def dispatch(
    event: Mapping[str, Any], routes: Mapping[str, Route], log: logging.Logger, handles: Handles | None = None
) -> dict[str, Any]:
    """Run the route the event names; every outcome is a JSON response, never an exception. The
    caller's handle is claimed on their first successful request (`handles`), so others can follow them."""
    try:
        request = parse_request(event)
        route = routes.get(request.route_key)
        if route is None:
            raise NotFound(f"There is no route {request.route_key!r}.", field=None)
        check_body_kind(request)
        status, body, *extra = route(request)
        if handles is not None and request.handle is not None and status < 400:
            _claim_handle(handles, request, log)
        return json_response(status, body, extra[0] if extra else None)
    except AviaryError as error:
        return error_response(error)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        # A cancelled transaction the domain did not turn into an answer lost a race (another
        # transaction on the same item, throttling of one item, a new ID already taken): the same
        # request can succeed when retried.
        if code in _RETRYABLE_CODES or code == "TransactionCanceledException":
            log.warning(
                "DynamoDB asked us to back off: %s %s", code, error.response.get("CancellationReasons")
            )
            return error_response(ServiceUnavailable("Aviary is busy; retry the request shortly."))
        log.exception("unexpected AWS error")
        return _internal_error()
    except (ConnectionError, HTTPClientError):  # timeouts and refused connections
        log.warning("a dependency timed out or refused the connection", exc_info=True)
        return error_response(ServiceUnavailable("A dependency did not answer in time; retry shortly."))
    except Exception:
        log.exception("unhandled error")
        return _internal_error()


def _claim_handle(handles: Handles, request: ApiRequest, log: logging.Logger) -> None:
    # Only after the route succeeded, so a refused request writes nothing at all; and a claim that
    # fails does not turn what was done into an error: the caller's next request claims again.
    try:
        handles.claim(request.caller, request.handle or "")
    except (ClientError, ConnectionError, HTTPClientError):
        log.warning("could not claim handle %r; the next request will", request.handle, exc_info=True)


def _internal_error() -> dict[str, Any]:
    # A bug on our side: say so without leaking internals; the log has the traceback.
    body = {
        "error": {"code": "internal_error", "message": "Something went wrong on our side.", "field": None}
    }
    return json_response(500, body)
