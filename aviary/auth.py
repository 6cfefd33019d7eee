"""Verification of Cognito-style RS256 ID tokens, returning who the caller is (aviary.caller).

The signing keys come from an injectable key source (kid -> public key), so tests sign their
own tokens and hosts read the user pool's JWKS. A lookup never waits on the network.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import jwt

from aviary.caller import Caller, unauthorized
from aviary.errors import AviaryError, ServiceUnavailable

log = logging.getLogger(__name__)

# Cognito signs with RS256 only; accepting anything else would let "none" or an HMAC
# keyed with the public key through.
ALGORITHM = "RS256"
REQUIRED_CLAIMS = ("exp", "iss", "aud", "sub")
# Far above any real ID token, far below what would make parsing it costly.
MAX_TOKEN_CHARS = 8192
# Three base64url segments: checked here in one C-level match before anything is decoded.
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*", re.ASCII)

KeySource = Callable[[str], Any]


class TokenVerifier:
    """Checks signature, issuer, audience and expiry; the caller is the token's user (Caller)."""

    def __init__(
        self,
        issuer: str,
        audience: str,
        key_source: KeySource,
        *,
        leeway_seconds: float = 30,
        remembered_tokens: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.key_source = key_source
        self.leeway_seconds = leeway_seconds
        # A client sends the same token for up to an hour: verify its signature once, then only
        # check its expiry. Keyed by the whole token, so only an identical token can match.
        self._verified: OrderedDict[str, tuple[Caller, float]] = OrderedDict()
        self._remembered_tokens = remembered_tokens
        self._clock = clock
        self._verified_lock = threading.Lock()

    def caller_from_authorization(self, header_value: str | None) -> Caller:
        """The caller from an 'Authorization: Bearer <token>' header value."""
        if not header_value or not header_value.strip():
            raise unauthorized("is missing; send 'Authorization: Bearer <ID token>' from your sign-in")
        scheme, _, token = header_value.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("must be 'Bearer <ID token>'; sign in and send the ID token you receive")
        return self.verify(token.strip())

    def verify(self, token: str) -> Caller:
        """The user of a valid token; Unauthorized (field Authorization) for any other token."""
        with self._verified_lock:
            remembered = self._verified.get(token)
        if remembered is not None:
            caller, expires_at = remembered
            if self._clock() <= expires_at + self.leeway_seconds:
                return caller
            with self._verified_lock:
                self._verified.pop(token, None)
            raise unauthorized("holds an expired token; sign in again")
        caller, expires_at = self._verify_signature_and_claims(token)
        with self._verified_lock:
            self._verified[token] = (caller, expires_at)
            if len(self._verified) > self._remembered_tokens:
                self._verified.popitem(last=False)  # the oldest verified first
        return caller

    def _verify_signature_and_claims(self, token: str) -> tuple[Caller, float]:
        if len(token) > MAX_TOKEN_CHARS:
            raise unauthorized(f"holds a token longer than {MAX_TOKEN_CHARS} characters; send the ID token")
        header = _unverified_header(token)
        if header.get("alg") != ALGORITHM:
            raise unauthorized(
                f"holds a token not signed with {ALGORITHM}; send the ID token from your sign-in"
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise unauthorized("holds a token without a key ID (kid); send the ID token from your sign-in")

        try:
            key = self.key_source(kid)
        except AviaryError:
            raise
        except Exception:
            raise unauthorized("holds a token signed by an unknown key; sign in again") from None

        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_seconds,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("holds an expired token; sign in again") from None
        except (jwt.InvalidAudienceError, jwt.InvalidIssuerError):
            raise unauthorized("holds a token issued for another service; sign in to Aviary") from None
        except jwt.MissingRequiredClaimError as error:
            raise unauthorized(f"holds a token without the '{error.claim}' claim; send an ID token") from None
        except (jwt.PyJWTError, ValueError, TypeError):
            raise unauthorized("holds a token whose signature or claims are invalid; sign in again") from None

        return Caller.of(claims), float(claims["exp"])


def _unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header, read only to choose the key; jwt.decode checks everything again.

    Parsed here rather than with jwt.get_unverified_header, which would parse the whole
    token a second time per request (PyJWT's segment checks are a large part of its cost).
    """
    malformed = unauthorized("does not hold a well-formed JWT; send the ID token from your sign-in")
    if not TOKEN_SHAPE.fullmatch(token):
        raise malformed
    segment = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (binascii.Error, ValueError, RecursionError):  # RecursionError: deeply nested JSON
        raise malformed from None
    if not isinstance(header, dict):
        raise malformed
    return header


class JwksKeySource:
    """kid -> public key from a JWKS URL, refreshed in the background so no request waits on it.

    An unknown kid starts one refresh (at most every recheck_seconds) and gets a 503 to retry;
    once a refresh has finished and the kid is still unknown, the token is rejected.
    """

    def __init__(
        self,
        jwks_url: str,
        *,
        timeout_seconds: float = 2.0,
        recheck_seconds: float = 30.0,
        max_age_seconds: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # The client only fetches and parses: this class holds the keys and decides when to fetch.
        self.client = jwt.PyJWKClient(
            jwks_url, cache_jwk_set=False, timeout=timeout_seconds, cooldown_duration=0
        )
        self.recheck_seconds = recheck_seconds
        self.max_age_seconds = max_age_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, Any] = {}
        self._refreshing = False
        self._last_attempt = -math.inf
        self._last_success = -math.inf

    @property
    def loaded(self) -> bool:
        """Some signing keys have been fetched."""
        with self._lock:
            return bool(self._keys)

    @property
    def refreshing(self) -> bool:
        """A background refresh is under way."""
        with self._lock:
            return self._refreshing

    def refresh(self) -> None:
        """Fetch the key set now, blocking for at most the timeout; a failure keeps the old keys."""
        with self._lock:
            self._last_attempt = self._clock()
        signing_keys = self.client.get_signing_keys(refresh=True)
        keys = {k.key_id: k.key for k in signing_keys if k.algorithm_name == ALGORITHM}
        with self._lock:
            self._keys = keys
            self._last_success = self._clock()

    def _refresh_in_background(self) -> None:
        try:
            self.refresh()
        except Exception:
            log.exception("Could not fetch the token signing keys from %s", self.client.uri)
        finally:
            with self._lock:
                self._refreshing = False

    def __call__(self, kid: str) -> Any:
        now = self._clock()
        with self._lock:
            key = self._keys.get(kid)
            outdated = now - self._last_success > self.max_age_seconds
            may_fetch = now - self._last_attempt >= self.recheck_seconds and not self._refreshing
            start = may_fetch and (key is None or outdated)
            if start:
                self._refreshing = True
                self._last_attempt = now
            refreshing = self._refreshing
            ever_fetched = self._last_success > -math.inf
        if start:
            threading.Thread(target=self._refresh_in_background, name="jwks-refresh", daemon=True).start()
        if key is not None:
            return key
        if refreshing or not ever_fetched:
            raise ServiceUnavailable(
                "The token signing keys are being fetched; retry the request shortly.", retry_after_seconds=1
            )
        raise LookupError(kid)


def jwks_key_source(jwks_url: str, *, timeout_seconds: float = 2.0) -> JwksKeySource:
    """A key source over a user pool's JWKS URL (Cognito: <issuer>/.well-known/jwks.json)."""
    return JwksKeySource(jwks_url, timeout_seconds=timeout_seconds)
