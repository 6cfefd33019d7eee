"""The token settings a region verifies ID tokens with: issuer, audience and signing keys.

Published into each region's SSM at deploy time (see lambda_functions/token_settings), read
once when a host's service starts, and kept on the host's disk so a restart while SSM is
unreachable still verifies tokens: the primary region is never asked at request time.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from jwt.algorithms import RSAAlgorithm

log = logging.getLogger(__name__)


class TokenSettingsError(ValueError):
    """The settings are missing or malformed; the message says where and what."""


@dataclass(frozen=True)
class TokenSettings:
    issuer: str
    audience: str
    jwks: dict[str, Any]

    def key_source(self) -> Callable[[str], Any]:
        """kid -> public key over the published keys; an unknown kid raises LookupError (a 401)."""
        keys = {key["kid"]: RSAAlgorithm.from_jwk(json.dumps(key)) for key in self.jwks["keys"]}

        def lookup(kid: str) -> Any:
            return keys[kid]

        return lookup


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
