"""Cognito-style ID tokens signed by a key made in the test: no user pool, no HTTP."""

from __future__ import annotations

import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_TestPool"
AUDIENCE = "aviary-test-client"
KEY_ID = "test-key-1"


class TokenIssuer:
    """Signs RS256 ID tokens and serves its public key as a verifier's key source."""

    def __init__(self, key_id: str = KEY_ID) -> None:
        self.key_id = key_id
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_key = self.private_key.public_key()

    def key_source(self, kid: str) -> Any:
        if kid != self.key_id:
            raise KeyError(kid)
        return self.public_key

    def claims(self, handle: str = "alice", **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": f"sub-{handle}",
            "cognito:username": handle,
            "token_use": "id",
            "iat": now,
            "exp": now + 3600,
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def token(self, handle: str = "alice", *, headers: dict[str, Any] | None = None, **overrides: Any) -> str:
        """A valid token for `handle`; a claim overridden with None is left out."""
        return jwt.encode(
            self.claims(handle, **overrides),
            self.private_key,
            algorithm="RS256",
            headers={"kid": self.key_id, **(headers or {})},
        )
