"""The URLs clients fetch accepted media from: <base>/media/<owner>/<media_id>[?versionId=<version>].

The path is the object's key in the media bucket (aviary.keys.media_object_key): the media
distribution maps it straight onto the key. The query pins the version the media processor
accepted; S3 replication keeps version IDs, so the pin holds in every region's bucket and after
the distribution fails over to another origin. Where no version is known (an unversioned bucket,
a tweet stored before versions were kept) the URL names the key alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from aviary.keys import media_object_key

# The variable that gives every process that shows tweets its base URL: the API's tweet
# functions and the timeline hosts (stacks set it; the local runtime points it at its front door).
MEDIA_BASE_URL_VARIABLE = "AVIARY_MEDIA_BASE_URL"
VERSION_PARAMETER = "versionId"  # the one query parameter the distribution's cache policy keys on


class MediaUrlSettingError(ValueError):
    """The media base URL is missing or not an absolute http(s) URL; the message names the variable."""


def parse_base_url(value: str | None, *, name: str = MEDIA_BASE_URL_VARIABLE) -> str:
    """`value` as a base URL (scheme and host, optionally a path; no query or fragment), without a
    trailing slash; MediaUrlSettingError naming `name` otherwise."""
    text = (value or "").strip()
    if not text:
        raise MediaUrlSettingError(
            f"{name} is not set; set it to the URL media is served under, e.g. https://media.<domainName>."
        )
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
        raise MediaUrlSettingError(
            f"{name} must be an absolute http(s) URL with a host and no query or fragment "
            f"(e.g. https://media.<domainName>), not {text!r}."
        )
    return text.rstrip("/")


@dataclass(frozen=True)
class MediaUrls:
    """Builds media URLs under one base URL (validated when built)."""

    base_url: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", parse_base_url(self.base_url, name="media base URL"))

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> MediaUrls:
        """From AVIARY_MEDIA_BASE_URL; MediaUrlSettingError naming the variable when it is missing or bad."""
        return cls(parse_base_url(environ.get(MEDIA_BASE_URL_VARIABLE)))

    def url(self, owner: str, media_id: str, version: str | None = None) -> str:
        """The URL of one upload of `owner`, pinned to `version` when one is given."""
        path = quote(media_object_key(owner, media_id), safe="/")
        if not version:
            return f"{self.base_url}/{path}"
        return f"{self.base_url}/{path}?{VERSION_PARAMETER}={quote(version, safe='')}"

    def urls(self, owner: str, media_ids: Sequence[str], versions: Mapping[str, str] | None) -> list[str]:
        """One URL per media ID, in the same order; `versions` maps an ID to its accepted version."""
        versions = versions or {}
        return [self.url(owner, media_id, versions.get(media_id)) for media_id in media_ids]
