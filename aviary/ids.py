"""Tweet and media IDs (ULIDs) and the fixed-width UTC timestamps stored beside them.

Both sort as plain strings in time order, which is what the timeline entry keys rely on
(see aviary.keys.timeline_entry_key).
"""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime, timedelta

# Crockford base32: no I, L, O or U, so IDs read aloud or retyped are hard to get wrong.
CROCKFORD_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ULID_LENGTH = 26
TIME_BITS = 48
RANDOM_BYTES = 10  # 80 bits
MAX_TIME_MS = (1 << TIME_BITS) - 1

# 26 characters carry 130 bits, but a ULID is 128: the top two bits must be zero, so the
# first character is at most '7'. Uppercase only, so one ID has exactly one spelling.
_ULID_PATTERN = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}", re.ASCII)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The last millisecond whose ISO form still has a four-digit year.
MAX_TIMESTAMP_MS = (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - _EPOCH) // timedelta(
    milliseconds=1
)


def _is_plain_int(value: object) -> bool:
    # bool is an int subclass, but True is never meant as a time.
    return isinstance(value, int) and not isinstance(value, bool)


def new_ulid(now_ms: int, random_bytes: bytes) -> str:
    """The ULID for a millisecond time and 10 random bytes; pure, so tests can pin both."""
    if not _is_plain_int(now_ms) or not 0 <= now_ms <= MAX_TIME_MS:
        raise ValueError(f"now_ms must be an int from 0 to {MAX_TIME_MS}, not {now_ms!r}")
    if not isinstance(random_bytes, bytes | bytearray) or len(random_bytes) != RANDOM_BYTES:
        raise ValueError(f"random_bytes must be exactly {RANDOM_BYTES} bytes, not {random_bytes!r}")
    value = (now_ms << (8 * RANDOM_BYTES)) | int.from_bytes(random_bytes, "big")
    chars = []
    for _ in range(ULID_LENGTH):
        chars.append(CROCKFORD_ALPHABET[value & 0x1F])
        value >>= 5
    return "".join(reversed(chars))


def generate_ulid() -> str:
    """A new ULID for the current wall-clock time."""
    return new_ulid(time.time_ns() // 1_000_000, os.urandom(RANDOM_BYTES))


def is_ulid(value: object) -> bool:
    """Whether value is a ULID in its canonical spelling: 26 uppercase Crockford base32 characters."""
    return isinstance(value, str) and _ULID_PATTERN.fullmatch(value) is not None


def ulid_time_ms(value: str) -> int:
    """The millisecond Unix time encoded in a ULID's first ten characters."""
    if not is_ulid(value):
        raise ValueError(f"not a canonical ULID: {value!r}")
    decoded = 0
    for char in value[:10]:
        decoded = (decoded << 5) | CROCKFORD_ALPHABET.index(char)
    return decoded


def utc_timestamp(epoch_ms: int) -> str:
    """ISO-8601 UTC with milliseconds, always 24 characters (2026-11-21T19:45:14.123Z) so it sorts by time."""
    if not _is_plain_int(epoch_ms) or not 0 <= epoch_ms <= MAX_TIMESTAMP_MS:
        raise ValueError(f"epoch_ms must be an int from 0 to {MAX_TIMESTAMP_MS}, not {epoch_ms!r}")
    # timedelta arithmetic is exact; fromtimestamp() would go through a float.
    moment = _EPOCH + timedelta(milliseconds=epoch_ms)
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}.{moment.microsecond // 1000:03d}Z"
    )
