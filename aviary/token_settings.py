"""The token settings a region verifies ID tokens with: issuer, audience and signing keys.

Published into each region's SSM at deploy time and hourly (see lambda_functions/token_settings),
read when a host's service starts and again when a token names a signing key the host lacks, and
kept on the host's disk so a restart while SSM is unreachable still verifies tokens: no other
region is asked at request time.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from jwt.algorithms import RSAAlgorithm

from aviary.errors import ServiceUnavailable

log = logging.getLogger(__name__)


class TokenSettingsError(ValueError):
    """The settings are missing or malformed; the message says where and what."""


@dataclass(frozen=True)
class TokenSettings:
    issuer: str
    audience: str
    jwks: dict[str, Any]

    def public_keys(self) -> dict[str, Any]:
        return {key["kid"]: RSAAlgorithm.from_jwk(json.dumps(key)) for key in self.jwks["keys"]}

    def key_source(self) -> Callable[[str], Any]:
        """kid -> public key over the published keys; an unknown kid raises LookupError (a 401)."""
        keys = self.public_keys()

        def lookup(kid: str) -> Any:
            return keys[kid]

        return lookup


def _in_a_thread(work: Callable[[], None]) -> None:
    threading.Thread(target=work, name="token-settings-reload", daemon=True).start()


class ReloadingKeySource:
    """kid -> public key over the published settings. A kid they lack (Cognito rotated its keys and
    the hourly publisher has copied the new one) starts one re-read of the settings, at most every
    `recheck_seconds`, in the background: the request that asked gets a 503 to retry, and once the
    re-read has finished a kid still unknown is rejected (401). No request waits on SSM.
    """

    def __init__(
        self,
        settings: TokenSettings,
        reload: Callable[[], TokenSettings],
        *,
        recheck_seconds: float = 30.0,
        on_reload: Callable[[TokenSettings], None] = lambda _settings: None,
        clock: Callable[[], float] = time.monotonic,
        run_in_background: Callable[[Callable[[], None]], None] = _in_a_thread,
    ) -> None:
        self.settings = settings
        self._keys = settings.public_keys()
        self._reload = reload
        self._on_reload = on_reload
        self.recheck_seconds = recheck_seconds
        self._clock = clock
        self._run_in_background = run_in_background
        self._lock = threading.Lock()
        self._reloading = False
        self._last_attempt = -math.inf

    def reload(self) -> None:
        """Re-read the settings now; a failure keeps the keys held."""
        try:
            settings = self._reload()
            keys = settings.public_keys()
        except Exception:
            log.exception("Could not re-read the token settings; keeping the signing keys held")
            return
        with self._lock:
            self.settings, self._keys = settings, keys
        self._on_reload(settings)

    def _reload_then_done(self) -> None:
        try:
            self.reload()
        finally:
            with self._lock:
                self._reloading = False

    def __call__(self, kid: str) -> Any:
        now = self._clock()
        with self._lock:
            key = self._keys.get(kid)
            start = key is None and not self._reloading and now - self._last_attempt >= self.recheck_seconds
            if start:
                self._reloading, self._last_attempt = True, now
        if key is not None:
            return key
        if start:
            self._run_in_background(self._reload_then_done)
        with self._lock:
            key, reloading = self._keys.get(kid), self._reloading
        if key is not None:
            return key
        if reloading:
            raise ServiceUnavailable(
                "The token signing keys are being re-read; retry the request shortly.", retry_after_seconds=1
            )
        raise LookupError(kid)


def parse_token_settings(text: str, *, source: str) -> TokenSettings:
    try:
        raw = json.loads(text)
        issuer, audience, jwks = raw["issuer"], raw["audience"], raw["jwks"]
        keys = jwks["keys"]
    except (ValueError, KeyError, TypeError) as error:
        raise TokenSettingsError(f"The token settings in {source} are not valid: {error!r}.") from None
    usable = [k for k in keys if isinstance(k, dict) and {"kid", "kty", "n", "e"} <= k.keys()]
    if not (
        isinstance(issuer, str) and issuer.startswith("https://") and isinstance(audience, str) and usable
    ):
        raise TokenSettingsError(
            f"The token settings in {source} lack an https issuer, an audience or RSA keys."
        )
    return TokenSettings(issuer=issuer.rstrip("/"), audience=audience, jwks={"keys": usable})


def load_token_settings(ssm_client: Any, parameter: str, saved_copy: Path) -> TokenSettings:
    """From SSM when it answers (and saved for next time), else from the copy saved last time."""
    try:
        text = ssm_client.get_parameter(Name=parameter)["Parameter"]["Value"]
    except (BotoCoreError, ClientError) as error:
        if not saved_copy.exists():
            raise TokenSettingsError(
                f"SSM parameter {parameter} could not be read ({error}) and no copy is saved at {saved_copy}."
            ) from None
        log.warning("SSM unreachable (%s); verifying tokens with the copy saved at %s", error, saved_copy)
        return parse_token_settings(saved_copy.read_text(), source=str(saved_copy))

    settings = parse_token_settings(text, source=f"SSM parameter {parameter}")
    saved_copy.parent.mkdir(parents=True, exist_ok=True)
    # One temporary file per process: a host's workers start together and all save the copy.
    temporary = saved_copy.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, saved_copy)  # atomic: a crash never leaves half a file
    return settings
