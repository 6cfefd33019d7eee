"""The errors Aviary's interfaces return to callers, each with its HTTP status and a stable code.

Read hosts and write handlers both raise these; the edge turns one into a JSON body with to_body().
A message says which input was at fault, what was wrong with it and what the caller can do.
"""

from __future__ import annotations

from typing import Any, ClassVar


class AviaryError(Exception):
    """An error meant for the caller: the status, code and message are safe to show them."""

    http_status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, field={self.field!r})"


class ValidationError(AviaryError):
    http_status = 400
    code = "invalid_request"


class Unauthorized(AviaryError):
    http_status = 401
    code = "unauthorized"


class Forbidden(AviaryError):
    http_status = 403
    code = "forbidden"


class NotFound(AviaryError):
    http_status = 404
    code = "not_found"


class UnsupportedMediaType(AviaryError):
    http_status = 415
    code = "unsupported_media_type"


class Conflict(AviaryError):
    http_status = 409
    code = "conflict"


class ServiceUnavailable(AviaryError):
    """A dependency is down or slow and nothing usable is at hand; the caller should retry later."""

    http_status = 503
    code = "service_unavailable"

    def __init__(self, message: str, *, retry_after_seconds: int = 2, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.retry_after_seconds = retry_after_seconds
