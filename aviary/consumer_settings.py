"""The settings of the consumers that each need one table or two: the social graph's stream into
counts, the idempotency stream's duplicate posts, and the media processor's upload queue."""

from __future__ import annotations

from dataclasses import dataclass

from aviary import settings
from aviary.settings import EnvironmentSettings


@dataclass(frozen=True, kw_only=True)
class EdgeCountsSettings(EnvironmentSettings):
    counts_table: str = settings.text(settings.COUNTS_TABLE)


@dataclass(frozen=True, kw_only=True)
class DuplicatePostsSettings(EnvironmentSettings):
    tweets_table: str = settings.text(settings.TWEETS_TABLE)  # the losing post becomes a tombstone


@dataclass(frozen=True, kw_only=True)
class MediaProcessorSettings(EnvironmentSettings):
    media_table: str = settings.text(settings.MEDIA_TABLE)
    media_bucket: str = settings.text(settings.MEDIA_BUCKET)
