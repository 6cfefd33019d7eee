"""The settings every writer of timelines runs with (fan-out, follow backfill, repair): the service
stack writes them into each such function's environment, the function reads them at cold start."""

from __future__ import annotations

from dataclasses import dataclass

from aviary import settings
from aviary.settings import EnvironmentSettings

DEFAULT_RETENTION_DAYS = 30
DEFAULT_MAX_ENTRIES = 800  # stacks/config.py's default timelineMaxEntries


@dataclass(frozen=True, kw_only=True)
class TimelineSettings(EnvironmentSettings):
    timelines_table: str = settings.text(settings.TIMELINES_TABLE)
    tweets_table: str = settings.text(settings.TWEETS_TABLE)
    social_graph_table: str = settings.text(settings.SOCIAL_GRAPH_TABLE)
    counts_table: str = settings.text(settings.COUNTS_TABLE)
    # Authors with more followers are merged on read, not fanned out (stacks/config.py: at least 1).
    celebrity_threshold: int = settings.whole_number(settings.CELEBRITY_THRESHOLD, minimum=1)
    # A timeline's cap.
    max_entries: int = settings.whole_number(
        settings.TIMELINE_MAX_ENTRIES, minimum=1, default=DEFAULT_MAX_ENTRIES
    )
    # Entries expire this long after their tweet.
    retention_days: int = settings.whole_number(
        settings.TIMELINE_RETENTION_DAYS, minimum=1, default=DEFAULT_RETENTION_DAYS
    )
