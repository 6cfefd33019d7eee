"""Checks for the write path's untrusted input: each takes a raw value and returns a clean one.

Any JSON value (or None) may arrive; a bad one raises ValidationError naming the field, what
was wrong and what to send instead, so no input can turn into a 5xx.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from aviary.errors import ValidationError
from aviary.ids import ULID_LENGTH, is_ulid

MAX_TEXT_CHARS = 280
MAX_HANDLE_CHARS = 15
MAX_MEDIA_PER_TWEET = 4
MIN_IDEMPOTENCY_KEY_CHARS = 8
MAX_IDEMPOTENCY_KEY_CHARS = 64
MAX_BODY_BYTES = 16 * 1024
MIB = 1024 * 1024
# Largest upload in bytes for each content type accepted by POST /media/uploads.
MEDIA_SIZE_CAPS = {
    "image/jpeg": 5 * MIB,
    "image/png": 5 * MIB,
    "image/gif": 5 * MIB,
    "image/webp": 5 * MIB,
    "video/mp4": 50 * MIB,
}

# No code point's canonical decomposition is longer than 4 code points, so NFC can shrink a
# string at most fourfold; anything longer than this cannot fit and is refused before NFC runs.
_MAX_NFC_SHRINK = 4
_ALLOWED_CONTROLS = frozenset("\n\t")
# Explicit directional embeddings, overrides and isolates reorder how the text around them is shown
# (text that reads one way and says another); the implicit marks (U+200E, U+200F, U+061C) do not.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

_HANDLE_PATTERN = re.compile(rf"[A-Za-z0-9_]{{1,{MAX_HANDLE_CHARS}}}", re.ASCII)
_IDEMPOTENCY_KEY_PATTERN = re.compile(
    rf"[A-Za-z0-9_-]{{{MIN_IDEMPOTENCY_KEY_CHARS},{MAX_IDEMPOTENCY_KEY_CHARS}}}", re.ASCII
)
_CROCKFORD_CHARS = frozenset("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
_FIELD_NAME_MAX_CHARS = 64


def _kind(value: object) -> str:
    """The JSON name of a value's type, for messages like 'must be a string, not an array'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def shown(value: str) -> str:
    """A rejected string, quoted, escaped and shortened, safe to echo in a message."""
    return ascii(value if len(value) <= 40 else value[:40] + "...")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _visible(char: str) -> bool:
    """Letters, digits, punctuation, symbols and spacing marks show; spaces, format characters
    (zero-width ones among them) and combining marks alone do not."""
    category = unicodedata.category(char)
    return category[0] in "LNPS" or category == "Mc"


def tweet_text(value: Any) -> str:
    """The tweet text, NFC-normalised: 1 to 280 code points with at least one visible, no controls but
    \\n and \\t, no bidirectional overrides."""
    if not isinstance(value, str):
        raise ValidationError(
            f"text must be a string of 1 to {MAX_TEXT_CHARS} characters, not {_kind(value)}.", field="text"
        )
    if len(value) > MAX_TEXT_CHARS * _MAX_NFC_SHRINK:
        raise ValidationError(
            f"text must be at most {MAX_TEXT_CHARS} characters after Unicode NFC normalisation; "
            f"it has {len(value)} before normalisation, far too many to fit. Shorten it.",
            field="text",
        )
    for position, char in enumerate(value, start=1):
        category = unicodedata.category(char)
        if category == "Cs":
            # A lone surrogate, e.g. from a JSON "\ud800" escape: not a character, and not encodable.
            raise ValidationError(
                f"text contains an unpaired surrogate U+{ord(char):04X} at position {position}, which "
                "is not a valid character; send well-formed Unicode text.",
                field="text",
            )
        if category == "Cc" and char not in _ALLOWED_CONTROLS:
            raise ValidationError(
                f"text contains the control character U+{ord(char):04X} at position {position}; the "
                "only control characters allowed are line feed (\\n) and tab (\\t). Remove it.",
                field="text",
            )
        if char in _BIDI_CONTROLS:
            raise ValidationError(
                f"text contains the bidirectional control U+{ord(char):04X} at position {position}, which "
                "changes the order the text around it is shown in; remove it.",
                field="text",
            )
    text = unicodedata.normalize("NFC", value)
    if not any(_visible(char) for char in text):
        raise ValidationError(
            "text must not be empty, only whitespace or only invisible characters (such as U+200B); "
            "write at least one visible character.",
            field="text",
        )
    if len(text) > MAX_TEXT_CHARS:
        raise ValidationError(
            f"text must be at most {MAX_TEXT_CHARS} characters after Unicode NFC normalisation; "
            f"it has {len(text)}.",
            field="text",
        )
    return text


_USER_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}", re.ASCII)


def user_id(value: Any, field: str = "user_id") -> str:
    """A user ID: the `sub` of a user's tokens (Cognito's are UUIDs), kept exactly as given."""
    if not isinstance(value, str) or not _USER_ID_PATTERN.fullmatch(value):
        raise ValidationError(
            f"{field} must be a user ID of 1 to 128 letters, digits, '-' or '_', not "
            f"{shown(value) if isinstance(value, str) else _kind(value)}.",
            field=field,
        )
    return value


def handle(value: Any, field: str = "handle") -> str:
    """A user handle, lower-cased because handles are case-insensitive."""
    if not isinstance(value, str):
        raise ValidationError(
            f"{field} must be a string handle of 1 to {MAX_HANDLE_CHARS} letters, digits or "
            f"underscores, not {_kind(value)}.",
            field=field,
        )
    if not _HANDLE_PATTERN.fullmatch(value):
        # "@alice" is how handles are written in text; say what to change rather than only the rule.
        at_sign = value.startswith("@") and _HANDLE_PATTERN.fullmatch(value[1:])
        raise ValidationError(
            f"{field} must be a handle: 1 to {MAX_HANDLE_CHARS} letters (A-Z, a-z), digits or underscores, "
            f"such as alice or bob_99, not {shown(value)}"
            + (f"; write it without the '@': {value[1:]}." if at_sign else "."),
            field=field,
        )
    return value.lower()


def _ulid_problem(value: str) -> str:
    """Why a string is not a canonical ULID, in words."""
    if len(value) != ULID_LENGTH:
        return f"it has {_plural(len(value), 'character')}"
    if value.isascii() and is_ulid(value.upper()):
        return "it is not in upper case"
    bad = next((char for char in value if char.upper() not in _CROCKFORD_CHARS), None)
    if bad is not None:
        return f"{bad!a} is not a Crockford base32 character (I, L, O and U are never used)"
    return "its first character is above 7, so it is out of the ULID range"


def tweet_id(value: Any, field: str = "id") -> str:
    """A tweet or media ID: a ULID in canonical (uppercase) form."""
    if not isinstance(value, str):
        raise ValidationError(
            f"{field} must be a string ID of {ULID_LENGTH} characters, not {_kind(value)}.", field=field
        )
    if not is_ulid(value):
        raise ValidationError(
            f"{field} must be an ID as this service issues them: {ULID_LENGTH} upper-case Crockford "
            f"base32 characters (a ULID); {shown(value)} is not one because {_ulid_problem(value)}.",
            field=field,
        )
    return value


def optional_tweet_id(value: Any, field: str) -> str | None:
    """A tweet ID where null or absence is allowed, such as reply_to."""
    return None if value is None else tweet_id(value, field)


def media_ids(value: Any) -> tuple[str, ...]:
    """The media attached to a tweet: up to four distinct upload IDs; absent or null means none."""
    field = "media_ids"
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValidationError(
            f"media_ids must be an array of up to {MAX_MEDIA_PER_TWEET} media IDs, not {_kind(value)}; "
            "leave it out for a tweet without media.",
            field=field,
        )
    if len(value) > MAX_MEDIA_PER_TWEET:
        raise ValidationError(
            f"media_ids may hold at most {MAX_MEDIA_PER_TWEET} media IDs; it has {len(value)}.",
            field=field,
        )
    seen: set[str] = set()
    for index, item in enumerate(value):
        # Reuse the ID check for its wording, but report the error against the list's field.
        try:
            media_id = tweet_id(item, f"media_ids[{index}]")
        except ValidationError as error:
            raise ValidationError(error.message, field=field) from None
        if media_id in seen:
            raise ValidationError(
                f"media_ids lists {media_id} more than once; attach each upload only once.", field=field
            )
        seen.add(media_id)
    return tuple(value)


def idempotency_key(value: Any) -> str:
    """The Idempotency-Key header that makes retrying a POST safe."""
    field = "Idempotency-Key"
    rule = (
        f"{MIN_IDEMPOTENCY_KEY_CHARS} to {MAX_IDEMPOTENCY_KEY_CHARS} characters of A-Z, a-z, 0-9, "
        "'-' or '_' (a UUID will do)"
    )
    if value is None:
        raise ValidationError(
            f"The Idempotency-Key header is required: send {rule}, new for each tweet and the same "
            "when retrying that request.",
            field=field,
        )
    if not isinstance(value, str):
        raise ValidationError(f"Idempotency-Key must be a string of {rule}, not {_kind(value)}.", field=field)
    if not _IDEMPOTENCY_KEY_PATTERN.fullmatch(value):
        raise ValidationError(
            f"Idempotency-Key must be {rule}; got {shown(value)}, with {_plural(len(value), 'character')}.",
            field=field,
        )
    return value


def media_upload(content_type: Any, size: Any) -> tuple[str, int]:
    """The content type (lower-cased) and byte size of a requested upload, within that type's cap."""
    allowed = ", ".join(MEDIA_SIZE_CAPS)
    if not isinstance(content_type, str):
        raise ValidationError(
            f"content_type must be a string, one of {allowed}; not {_kind(content_type)}.",
            field="content_type",
        )
    # Media types are case-insensitive; isascii() first, as lower() maps some non-ASCII to ASCII.
    normalised = content_type.lower() if content_type.isascii() else content_type
    if normalised not in MEDIA_SIZE_CAPS:
        raise ValidationError(
            f"content_type must be one of {allowed} (without parameters); got {shown(content_type)}.",
            field="content_type",
        )
    cap = MEDIA_SIZE_CAPS[normalised]
    rule = f"a whole number of bytes from 1 to {cap} ({cap // MIB} MiB) for {normalised}"
    if not isinstance(size, int) or isinstance(size, bool):
        raise ValidationError(f"size must be {rule}, not {_kind(size)}.", field="size")
    if not 1 <= size <= cap:
        raise ValidationError(f"size must be {rule}; it is {size}.", field="size")
    return normalised, size


class _NonStandardJson(ValueError):
    """NaN or Infinity, which Python's json accepts but JSON does not."""


def _refuse_constant(name: str) -> Any:
    raise _NonStandardJson(name)


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Which of two values for one key wins differs between parsers; refuse rather than guess.
    result: dict[str, Any] = {}
    for key, item in pairs:
        if key in result:
            raise ValidationError(
                f"body has the key {shown(key)} more than once; send each key only once.", field="body"
            )
        result[key] = item
    return result


def json_object_body(raw: str | bytes | None) -> dict[str, Any]:
    """The request body parsed as one JSON object: UTF-8, at most 16 KiB, no repeated keys."""
    field = "body"
    if raw is None:
        raise ValidationError("A request body is required: send a JSON object.", field=field)
    if isinstance(raw, str):
        # Every character is at least one byte, so a long string is refused before encoding it.
        if len(raw) > MAX_BODY_BYTES:
            raise ValidationError(
                f"body must be at most {MAX_BODY_BYTES} bytes (16 KiB); it has more.", field=field
            )
        try:
            data = raw.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError(
                "body is not valid UTF-8 (it holds an unpaired surrogate); send UTF-8 encoded JSON.",
                field=field,
            ) from None
    elif isinstance(raw, bytes):
        data = raw
    else:
        raise ValidationError(f"body must be JSON text, not {_kind(raw)}.", field=field)
    if not data:
        raise ValidationError("A request body is required: send a JSON object.", field=field)
    if len(data) > MAX_BODY_BYTES:
        raise ValidationError(
            f"body must be at most {MAX_BODY_BYTES} bytes (16 KiB); it has {len(data)}.", field=field
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValidationError(
            f"body is not valid UTF-8 (bad byte at offset {error.start}); send UTF-8 encoded JSON.",
            field=field,
        ) from None
    if text.startswith("\ufeff"):
        raise ValidationError("body starts with a byte order mark; send the JSON without one.", field=field)
    try:
        parsed = json.loads(
            text, object_pairs_hook=_object_without_duplicates, parse_constant=_refuse_constant
        )
    except _NonStandardJson as error:
        raise ValidationError(
            f"body contains {error}, which is not valid JSON; send finite numbers only.", field=field
        ) from None
    except RecursionError:
        raise ValidationError("body is nested too deeply; send a flat JSON object.", field=field) from None
    except ValueError as error:
        # JSONDecodeError, and also the error for integers with thousands of digits.
        detail = error.msg if isinstance(error, json.JSONDecodeError) else "a number is far too long"
        raise ValidationError(
            f"body is not valid JSON ({detail}); send a JSON object.", field=field
        ) from None
    if not isinstance(parsed, dict):
        raise ValidationError(
            f'body must be a JSON object such as {{"text": "..."}}, not {_kind(parsed)}.', field=field
        )
    return parsed


def _field_name(key: Any) -> str:
    """A key as an error's field: unchanged when short and printable, else quoted, escaped and shortened."""
    if isinstance(key, str) and 0 < len(key) <= _FIELD_NAME_MAX_CHARS and key.isprintable():
        return key
    return shown(str(key))


def known_fields(body: Any, allowed: set[str] | frozenset[str]) -> None:
    """Refuse keys an endpoint does not know, so a misspelt optional field is not silently ignored."""
    if not isinstance(body, dict):
        raise ValidationError(f"body must be a JSON object, not {_kind(body)}.", field="body")
    unknown = sorted((key for key in body if key not in allowed), key=str)
    if unknown:
        first = unknown[0]
        expected = ", ".join(sorted(allowed)) or "no fields"
        raise ValidationError(
            f"body has the unknown field {shown(str(first))}; this request accepts {expected}. "
            "Check the spelling or remove it.",
            field=_field_name(first),
        )
