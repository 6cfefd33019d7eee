"""Requests the HTTP server cannot read are answered in the JSON error shape, echoing nothing.

aiohttp answers a request it cannot parse (a request line or header too long, a malformed header,
a bad method) itself, before any middleware runs, with a text/plain body that repeats part of the
input. Its RequestHandler has no hook for that answer, so `install` wraps its error method: the
original still logs and still refuses once a response has begun; the answer becomes Aviary's JSON.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aiohttp import web, web_protocol

_UNREADABLE = (
    "The request could not be read: its request line or a header is malformed or too long. "
    "Send a well-formed HTTP/1.1 request with shorter headers."
)
_UNEXPECTED = "An unexpected error occurred."


def install() -> None:
    """Wrap aiohttp's error answer once per process (every app in it answers alike)."""
    handler = web_protocol.RequestHandler
    if getattr(handler.handle_error, "answers_json", False):
        return
    plain = handler.handle_error

    def handle_error(
        self: Any,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        plain(self, request, status, exc, message)
        phrase = HTTPStatus(status).phrase
        body = {
            "error": {
                "code": phrase.lower().replace(" ", "_"),
                "message": _UNREADABLE if status < 500 else _UNEXPECTED,
                "field": None,
            }
        }
        response = web.json_response(body, status=status)
        response.force_close()
        return response

    handle_error.answers_json = True  # type: ignore[attr-defined]
    handler.handle_error = handle_error  # type: ignore[method-assign]
