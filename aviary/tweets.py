"""The tweet: its item shape in the tweets table and its JSON shape in the API.

Replies and retweets are tweets too (reply_to / retweet_of). A retweet stores no text or media
of its own: it refers to its original, which is read whenever the retweet is shown, so a deleted
original shows nowhere. A deleted tweet stays as a tombstone (deleted = true, text and media
removed) so that the stream tells every region's fan-out to take it out of timelines, and a late
duplicate of the original cannot bring it back.

A tweet with media keeps each upload's accepted object version beside its ID (media_versions), so
that every read can show URLs pinned to the accepted bytes without reading the media table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aviary.ids import ulid_time_ms, utc_timestamp
from aviary.media_urls import MediaUrls


@dataclass(frozen=True)
class Tweet:
    tweet_id: str
    author_id: str
    created_at: str  # aviary.ids.utc_timestamp of the ID's own time: fixed width, sorts by time
    text: str
    reply_to: str | None = None
    retweet_of: str | None = None
    media_ids: tuple[str, ...] = field(default_factory=tuple)
    # media ID -> the object version the media processor accepted; IDs with no known version are absent.
    media_versions: Mapping[str, str] = field(default_factory=dict, hash=False)
    deleted: bool = False
    like_count: int = 0
    # As read now, never stored: a retweet's original; for a reply, whether its parent is deleted.
    original: Tweet | None = None
    reply_to_deleted: bool | None = None

    @staticmethod
    def created_at_of(tweet_id: str) -> str:
        """A tweet's time is the one inside its ULID, so the ID and the timestamp never disagree."""
        return utc_timestamp(ulid_time_ms(tweet_id))

    def to_item(self) -> dict[str, dict[str, Any]]:
        """The tweets-table item (DynamoDB attribute values); absent optionals are left out."""
        item: dict[str, dict[str, Any]] = {
            "tweet_id": {"S": self.tweet_id},
            "author_id": {"S": self.author_id},
            "created_at": {"S": self.created_at},
            "deleted": {"BOOL": self.deleted},
            "like_count": {"N": str(self.like_count)},
        }
        if self.text:  # a retweet has none: it shows its original's
            item["text"] = {"S": self.text}
        if self.reply_to:
            item["reply_to"] = {"S": self.reply_to}
        if self.retweet_of:
            item["retweet_of"] = {"S": self.retweet_of}
        if self.media_ids:
            item["media_ids"] = {"L": [{"S": media_id} for media_id in self.media_ids]}
        versions = {
            media_id: {"S": self.media_versions[media_id]}
            for media_id in self.media_ids
            if self.media_versions.get(media_id)
        }
        if versions:
            item["media_versions"] = {"M": versions}
        return item

    @classmethod
    def from_item(cls, item: dict[str, dict[str, Any]]) -> Tweet:
        return cls(
            tweet_id=item["tweet_id"]["S"],
            author_id=item["author_id"]["S"],
            created_at=item["created_at"]["S"],
            text=item.get("text", {}).get("S", ""),
            reply_to=item.get("reply_to", {}).get("S"),
            retweet_of=item.get("retweet_of", {}).get("S"),
            media_ids=tuple(v["S"] for v in item.get("media_ids", {}).get("L", [])),
            media_versions={
                media_id: version["S"]
                for media_id, version in item.get("media_versions", {}).get("M", {}).items()
            },
            deleted=item.get("deleted", {}).get("BOOL", False),
            like_count=int(item.get("like_count", {}).get("N", "0")),
        )

    def summary_item(self) -> dict[str, dict[str, Any]]:
        """What a retweet shows of its original, as a DynamoDB map (timeline entries carry it)."""
        return {"M": {name: value for name, value in self.to_item().items() if name in SUMMARY_ATTRIBUTES}}

    def to_json(self, urls: MediaUrls) -> dict[str, Any]:
        """The API's representation (GET /tweets/{id}, POST /tweets responses), media under `urls`."""
        return {
            "id": self.tweet_id,
            "author": self.author_id,
            "created_at": self.created_at,
            "text": self.text,
            "reply_to": self.reply_to,
            "retweet_of": self.retweet_of,
            "media_ids": list(self.media_ids),
            "media_urls": self.media_urls(urls),
            "like_count": self.like_count,
            "deleted": self.deleted,
            "original": None if self.original is None else self.original.summary_json(urls),
            "reply_to_deleted": self.reply_to_deleted,
        }

    def summary_json(self, urls: MediaUrls) -> dict[str, Any]:
        return {
            "id": self.tweet_id,
            "author": self.author_id,
            "created_at": self.created_at,
            "text": self.text,
            "media_ids": list(self.media_ids),
            "media_urls": self.media_urls(urls),
        }

    def media_urls(self, urls: MediaUrls) -> list[str]:
        """The URL of each of the tweet's media, in media_ids' order, pinned where the version is known."""
        return urls.urls(self.author_id, self.media_ids, self.media_versions)


# What a retweet shows of its original: everything but counts and state.
SUMMARY_ATTRIBUTES = ("tweet_id", "author_id", "created_at", "text", "media_ids", "media_versions")
