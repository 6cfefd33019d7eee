"""The settings of the API's functions, one class per route group: each names only the tables the
group's role may use, so no function is told of a table it has no grant on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Self

from aviary import settings
from aviary.settings import EnvironmentSettings, SettingsError


@dataclass(frozen=True, kw_only=True)
class ApiUsersSettings(EnvironmentSettings):
    # Every route group claims its caller's handle in the social graph on their first request.
    social_graph_table: str = settings.text(settings.SOCIAL_GRAPH_TABLE)


@dataclass(frozen=True, kw_only=True)
class ApiTweetsSettings(EnvironmentSettings):
    social_graph_table: str = settings.text(settings.SOCIAL_GRAPH_TABLE)
    tweets_table: str = settings.text(settings.TWEETS_TABLE)
    idempotency_table: str = settings.text(settings.IDEMPOTENCY_TABLE)
    media_table: str = settings.text(settings.MEDIA_TABLE)  # a post's media must be accepted
    counts_table: str = settings.text(settings.COUNTS_TABLE)  # a tweet is shown with its like count
    media_base_url: str = settings.base_url(settings.MEDIA_BASE_URL)  # tweets show their media's URLs


@dataclass(frozen=True, kw_only=True)
class ApiMediaSettings(EnvironmentSettings):
    social_graph_table: str = settings.text(settings.SOCIAL_GRAPH_TABLE)
    media_table: str = settings.text(settings.MEDIA_TABLE)
    media_bucket: str = settings.text(settings.MEDIA_BUCKET)  # upload URLs are signed for it


@dataclass(frozen=True, kw_only=True)
class ApiHealthSettings(EnvironmentSettings):
    """GET /health reads one missing item of each source table."""

    tweets_table: str = settings.text(settings.TWEETS_TABLE)
    social_graph_table: str = settings.text(settings.SOCIAL_GRAPH_TABLE)
    idempotency_table: str = settings.text(settings.IDEMPOTENCY_TABLE)
    media_table: str = settings.text(settings.MEDIA_TABLE)
    # The region the answer names: Lambda sets AWS_REGION itself and refuses it from a stack, so it
    # is read here but never written.
    region: str = ""

    @classmethod
    def from_environment(cls, environment: Mapping[str, str]) -> Self:
        region = environment.get("AWS_REGION") or environment.get("AWS_DEFAULT_REGION", "")
        if not region:
            raise SettingsError(
                "Environment variable AWS_REGION is not set; Lambda sets it in every function."
            )
        return replace(super().from_environment(environment), region=region)
