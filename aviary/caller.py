"""Who sent a request, from the claims of a verified ID token.

The caller is the token's `sub`, the user ID Cognito never changes or reuses; the username is
only the handle the user would like (aviary.handles). Apart from aviary.auth, which verifies
tokens itself (the hosts), so that the API functions, whose tokens API Gateway has verified, do
not import a JWT library at cold start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aviary import validation
from aviary.errors import Unauthorized, ValidationError

USERNAME_CLAIM = "cognito:username"
HEADER = "Authorization"


@dataclass(frozen=True)
class Caller:
    """Who sent a request: the user ID every key is built from, and the handle asked for (None when
    the username is not a valid handle)."""

    user_id: str
    handle: str | None

    @classmethod
    def of(cls, claims: dict[str, Any]) -> Caller:
        """From verified claims; Unauthorized if the token names no usable user."""
        try:
            user_id = validation.user_id(claims.get("sub"), field=HEADER)
        except ValidationError:
            raise unauthorized("holds a token whose 'sub' is not a user ID; send the ID token") from None
        username = claims.get(USERNAME_CLAIM)
        if not isinstance(username, str) or not username:
            raise unauthorized(f"holds a token without the '{USERNAME_CLAIM}' claim; send the ID token")
        try:
            handle: str | None = validation.handle(username)
        except ValidationError:
            handle = None
        return cls(user_id, handle)


def unauthorized(problem: str) -> Unauthorized:
    return Unauthorized(f"The Authorization header {problem}.", field=HEADER)
