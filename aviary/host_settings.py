"""The timeline hosts' settings: the host fleet writes them into each host's /etc/aviary/timeline.env
and the timeline service reads them at start (the local runtime sets the same variables)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Self

from aviary import settings
from aviary.naming import table_name
from aviary.schema import SOCIAL_GRAPH, TWEETS
from aviary.settings import EnvironmentSettings, SettingsError

REGION = "AVIARY_REGION"
CACHE_PATH = "AVIARY_CACHE_PATH"
CACHE_MOUNT = "AVIARY_CACHE_MOUNT"
PORT = "AVIARY_PORT"
TOKEN_SETTINGS_PARAMETER = "AVIARY_TOKEN_SETTINGS_PARAMETER"
JWT_ISSUER = "AVIARY_JWT_ISSUER"
JWT_AUDIENCE = "AVIARY_JWT_AUDIENCE"
JWKS_URL = "AVIARY_JWKS_URL"
HOST = "AVIARY_HOST"

# On the instance-store volume (hosts/systemd: the unit makes its directory writable).
DEFAULT_CACHE_PATH = "/data/timeline-cache/cache.sqlite"
DEFAULT_PORT = 8080
ALL_INTERFACES = "0.0.0.0"


@dataclass(frozen=True, kw_only=True)
class TimelineHostSettings(EnvironmentSettings):
    SET_BY = "the host's timeline.env must set it"

    # Fields in the order the env file lists them.
    region: str = settings.text(REGION)
    timelines_table: str = settings.text(settings.TIMELINES_TABLE)
    # Source tables have derived names (aviary.naming), the same in every region.
    social_graph_table: str = settings.text(settings.SOCIAL_GRAPH_TABLE, default=table_name(SOCIAL_GRAPH))
    tweets_table: str = settings.text(settings.TWEETS_TABLE, default=table_name(TWEETS))
    counts_table: str = settings.text(settings.COUNTS_TABLE)
    celebrity_follower_threshold: int = settings.whole_number(settings.CELEBRITY_THRESHOLD, minimum=1)
    cache_path: str = settings.text(CACHE_PATH, default=DEFAULT_CACHE_PATH)
    # Where the instance-store volume holding the cache is mounted (deployed hosts: /data); a host
    # is not ready while nothing is mounted there. None: no such check (a laptop, the local stage).
    cache_mount: str | None = settings.text(CACHE_MOUNT, default=None)
    port: int = settings.whole_number(PORT, minimum=1, maximum=65535, default=DEFAULT_PORT)
    # Either an SSM parameter holding issuer, audience and keys (deployed hosts) ...
    token_settings_parameter: str | None = settings.text(TOKEN_SETTINGS_PARAMETER, default=None)
    media_base_url: str = settings.base_url(settings.MEDIA_BASE_URL)  # what the pages' media URLs start with
    # ... or the three given directly (running the service by hand against a user pool).
    jwt_issuer: str | None = settings.text(JWT_ISSUER, default=None)
    jwt_audience: str | None = settings.text(JWT_AUDIENCE, default=None)
    jwks_url: str | None = settings.text(JWKS_URL, default=None)  # by default, Cognito's under the issuer
    host: str | None = settings.text(HOST, default=None)  # None: every interface (ALL_INTERFACES)

    @property
    def listen_host(self) -> str:
        return self.host or ALL_INTERFACES

    @classmethod
    def from_environment(cls, environment: Mapping[str, str]) -> Self:
        found = super().from_environment(environment)
        if found.token_settings_parameter:
            return replace(found, jwt_issuer=None, jwt_audience=None, jwks_url=None)
        for name, value in ((JWT_ISSUER, found.jwt_issuer), (JWT_AUDIENCE, found.jwt_audience)):
            if not value:
                raise SettingsError(
                    f"Environment variable {name} is not set; the host's timeline.env must set it, "
                    f"or {TOKEN_SETTINGS_PARAMETER} instead."
                )
        issuer = (found.jwt_issuer or "").rstrip("/")
        # Cognito publishes a user pool's keys under its issuer URL.
        return replace(found, jwt_issuer=issuer, jwks_url=found.jwks_url or f"{issuer}/.well-known/jwks.json")
