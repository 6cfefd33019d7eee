"""The contract between the stacks and the code they deploy: each runtime's settings are one frozen
dataclass whose fields name their environment variables (aviary/*_settings.py).

The construct that deploys a runtime writes its variables with `to_environment()`; the runtime
reads them once at cold start with `from_environment()`, which stops with the variable's name and
its rule when one is missing or malformed, rather than failing every request or record after it.
A field with a default may be left unset; a field whose value is None is not written.

This module imports nothing but the standard library and aviary.media_urls, so both the stacks and
the handlers can import it without the other's dependencies.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from aviary.media_urls import MEDIA_BASE_URL_VARIABLE, MediaUrlSettingError, parse_base_url

# Every variable the stacks set, named once here. Never rename one: the local runtime, the drills
# and the tests set them too.
TWEETS_TABLE = "AVIARY_TWEETS_TABLE"
SOCIAL_GRAPH_TABLE = "AVIARY_SOCIAL_GRAPH_TABLE"
IDEMPOTENCY_TABLE = "AVIARY_IDEMPOTENCY_TABLE"
MEDIA_TABLE = "AVIARY_MEDIA_TABLE"
MEDIA_BUCKET = "AVIARY_MEDIA_BUCKET"
TIMELINES_TABLE = "AVIARY_TIMELINES_TABLE"
COUNTS_TABLE = "AVIARY_COUNTS_TABLE"
CELEBRITY_THRESHOLD = "AVIARY_CELEBRITY_THRESHOLD"
TIMELINE_MAX_ENTRIES = "AVIARY_TIMELINE_MAX_ENTRIES"
TIMELINE_RETENTION_DAYS = "AVIARY_TIMELINE_RETENTION_DAYS"
MEDIA_BASE_URL = MEDIA_BASE_URL_VARIABLE

_VARIABLE = "aviary_variable"


class SettingsError(ValueError):
    """An environment variable a runtime needs is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Variable:
    """One environment variable: its name, how its text becomes the field's value and back."""

    name: str
    parse: Callable[[str, str], Any]  # (name, text) -> value, or SettingsError naming the variable
    write: Callable[[Any], str] = str


def _text(_name: str, raw: str) -> str:
    return raw


def _whole_number(minimum: int, maximum: int) -> Callable[[str, str], int]:
    def parse(name: str, raw: str) -> int:
        # isascii: int() would take other scripts' digits; 15 digits keep int() cheap on junk.
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 15 and minimum <= int(raw) <= maximum):
            raise SettingsError(
                f"Environment variable {name} must be a whole number from {minimum} to {maximum}, "
                f"not {raw!r}."
            )
        return int(raw)

    return parse


def _base_url(name: str, raw: str) -> str:
    try:
        return parse_base_url(raw, name=name)
    except MediaUrlSettingError as error:
        raise SettingsError(f"Environment variable {error}") from None


def text(name: str, **field_options: Any) -> Any:
    """A field read from `name`: any text but empty (surrounding blanks are dropped)."""
    return dataclasses.field(metadata={_VARIABLE: Variable(name, _text)}, **field_options)


def whole_number(name: str, *, minimum: int, maximum: int = 10**12, **field_options: Any) -> Any:
    """A field read from `name`: a whole number from `minimum` to `maximum`."""
    return dataclasses.field(
        metadata={_VARIABLE: Variable(name, _whole_number(minimum, maximum))}, **field_options
    )


def base_url(name: str, **field_options: Any) -> Any:
    """A field read from `name`: an absolute http(s) URL, kept without its trailing slash."""
    return dataclasses.field(metadata={_VARIABLE: Variable(name, _base_url)}, **field_options)


class EnvironmentSettings:
    """What every runtime's settings class shares; subclasses are frozen dataclasses whose fields
    are declared with text(), whole_number() or base_url()."""

    # Where a missing variable should have come from, for the error message.
    SET_BY: ClassVar[str] = "the stack that deploys this function sets it in the function's environment"

    def to_environment(self) -> dict[str, str]:
        """The variables that give a runtime these settings (what a construct deploys it with)."""
        environment = {}
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            variable = field.metadata.get(_VARIABLE)
            value = getattr(self, field.name)
            if variable is not None and value is not None:
                environment[variable.name] = variable.write(value)
        return environment

    @classmethod
    def from_environment(cls, environment: Mapping[str, str]) -> Self:
        """The settings these variables give; SettingsError naming the first one missing or malformed."""
        values = {}
        for field in dataclasses.fields(cls):  # type: ignore[arg-type]
            variable: Variable | None = field.metadata.get(_VARIABLE)
            if variable is None:
                continue
            raw = (environment.get(variable.name) or "").strip()
            if not raw:
                if field.default is dataclasses.MISSING:
                    raise SettingsError(f"Environment variable {variable.name} is not set; {cls.SET_BY}.")
                continue  # the field's default
            values[field.name] = variable.parse(variable.name, raw)
        return cls(**values)

    @classmethod
    def variables(cls) -> dict[str, bool]:
        """Each variable this class reads, and whether it must be set."""
        return {
            field.metadata[_VARIABLE].name: field.default is dataclasses.MISSING
            for field in dataclasses.fields(cls)  # type: ignore[arg-type]
            if _VARIABLE in field.metadata
        }
