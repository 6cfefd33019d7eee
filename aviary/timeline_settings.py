"""The settings every writer of timelines runs with (fan-out, follow backfill, repair), read from the
environment the stacks give their functions, so a missing or bad value stops a cold start with the
variable's name rather than failing every record after it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_RETENTION_DAYS = 30
DEFAULT_MAX_ENTRIES = 800  # stacks/config.py's default timelineMaxEntries


class SettingsError(ValueError):
    """An environment variable a function needs is missing or malformed."""


@dataclass(frozen=True)
class TimelineSettings:
    timelines_table: str
    tweets_table: str
    social_graph_table: str
    counts_table: str
    celebrity_threshold: int  # authors with more followers are merged on read, not fanned out
    max_entries: int = DEFAULT_MAX_ENTRIES  # a timeline's cap
    retention_days: int = DEFAULT_RETENTION_DAYS  # entries expire this long after their tweet

    @classmethod
    def from_environment(cls, environment: Mapping[str, str]) -> TimelineSettings:
        def text(name: str) -> str:
            value = environment.get(name, "")
            if not value:
                raise SettingsError(f"the environment variable {name} must be set")
            return value

        def number(name: str, default: int | None, minimum: int) -> int:
            raw = environment.get(name, "")
            if not raw and default is not None:
                return default
            if not raw.isdigit() or int(raw) < minimum:
                raise SettingsError(f"the environment variable {name} must be a whole number >= {minimum}")
            return int(raw)

        return cls(
            timelines_table=text("AVIARY_TIMELINES_TABLE"),
            tweets_table=text("AVIARY_TWEETS_TABLE"),
            social_graph_table=text("AVIARY_SOCIAL_GRAPH_TABLE"),
            counts_table=text("AVIARY_COUNTS_TABLE"),
            celebrity_threshold=number("AVIARY_CELEBRITY_THRESHOLD", None, 0),
            max_entries=number("AVIARY_TIMELINE_MAX_ENTRIES", DEFAULT_MAX_ENTRIES, 1),
            retention_days=number("AVIARY_TIMELINE_RETENTION_DAYS", DEFAULT_RETENTION_DAYS, 1),
        )
