"""Pure timeline logic: query parameters, opaque cursors and the merge of fanned-out and celebrity tweets.

A page is ordered by the timeline entry key (created_at#tweet_id), newest first; its cursor is the
key of its last item, so the next page is everything strictly older than that. The merge works on
stored entries and tweets (tweet_id, author_id); the page it returns names them as the API names a
tweet (id, author).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypedDict

from aviary.errors import ValidationError
from aviary.keys import TIMELINE_ENTRY_ATTRIBUTES, timeline_entry_key
from aviary.media_urls import MediaUrls

DEFAULT_LIMIT = 20
MAX_LIMIT = 100

# created_at is fixed-width ISO-8601 UTC with milliseconds; tweet ids are ULIDs (Crockford base32).
ENTRY_KEY_PATTERN = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z#[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}", re.ASCII
)
# A well-formed cursor is 52 characters; anything far longer is not worth decoding.
MAX_CURSOR_CHARS = 128


class TimelinePage(TypedDict):
    items: list[dict[str, Any]]
    next_cursor: str | None


def _shown(raw: str) -> str:
    """Part of a rejected value, quoted, for an error message."""
    return repr(raw if len(raw) <= 40 else raw[:40] + "...")


def parse_limit(raw: str | None) -> int:
    """The page size from the 'limit' query parameter; absent or empty means the default."""
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    # Digits only (no sign, spaces or exponent), and few of them, before int() sees it.
    if re.fullmatch(r"[0-9]{1,3}", raw, re.ASCII) and 1 <= int(raw) <= MAX_LIMIT:
        return int(raw)
    raise ValidationError(
        f"Query parameter 'limit' must be a whole number from 1 to {MAX_LIMIT}, not {_shown(raw)}; "
        f"leave it out for {DEFAULT_LIMIT}.",
        field="limit",
    )


def encode_cursor(entry_key: str) -> str:
    return base64.urlsafe_b64encode(entry_key.encode()).rstrip(b"=").decode("ascii")


def decode_cursor(raw: str | None) -> str | None:
    """The entry key inside a cursor from a previous page; absent or empty means the first page."""
    if raw is None or raw == "":
        return None
    if len(raw) > MAX_CURSOR_CHARS:
        raise _invalid_cursor(raw)
    try:
        padded = raw.encode("ascii") + b"=" * (-len(raw) % 4)
        entry_key = base64.b64decode(padded, altchars=b"-_", validate=True).decode("ascii")
    except (UnicodeError, binascii.Error, ValueError):
        raise _invalid_cursor(raw) from None
    if not ENTRY_KEY_PATTERN.fullmatch(entry_key):
        raise _invalid_cursor(raw)
    return entry_key


def _invalid_cursor(raw: str) -> ValidationError:
    # Built only when needed: a timeline host decodes a cursor on every request for a later page.
    return ValidationError(
        f"Query parameter 'cursor' is not a cursor this service issued ({_shown(raw)}); pass the "
        "'next_cursor' of the previous page unchanged, or leave it out for the first page.",
        field="cursor",
    )


def entry_key_of(item: Mapping[str, Any]) -> str:
    return timeline_entry_key(item["created_at"], item["tweet_id"])


def merge_timeline(
    entries: Iterable[Mapping[str, Any]],
    celebrity_tweets: Iterable[Mapping[str, Any]],
    limit: int,
    cursor: str | None,
    *,
    urls: MediaUrls,
) -> TimelinePage:
    """One page, newest first, from materialised entries and celebrities' tweets, each tweet once.

    Callers pass up to limit + 1 candidates from each source, so more candidates than the limit
    means an older page exists. `cursor` is a decoded entry key: only older items are taken. Media
    URLs are built under `urls`' base URL.
    """
    newest_first: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for item in (*entries, *celebrity_tweets):
        if not isinstance(item.get("created_at"), str) or not isinstance(item.get("tweet_id"), str):
            continue  # not a tweet this service can place in time; nothing to show
        key = entry_key_of(item)
        if cursor is not None and key >= cursor:
            continue
        # The same tweet from both sources (its author crossed the threshold) has the same key.
        newest_first.setdefault(item["tweet_id"], (key, item))

    ordered = sorted(newest_first.values(), key=lambda pair: pair[0], reverse=True)
    shown = ordered[:limit]
    next_cursor = encode_cursor(shown[-1][0]) if len(ordered) > limit else None
    return {"items": [timeline_item(item, urls) for _, item in shown], "next_cursor": next_cursor}


# A timeline item is shown with a tweet's field names (aviary.tweets.Tweet.to_json); the tables keep
# their attribute names, which key the items. Media versions are shown only inside media URLs.
SHOWN_AS = {"tweet_id": "id", "author_id": "author"}
SHOWN_THROUGH_URLS = "media_versions"


def timeline_item(item: Mapping[str, Any], urls: MediaUrls) -> dict[str, Any]:
    """One item of a page, as the API shows a tweet: every entry attribute under the tweet's name for
    it, absent ones as a tweet shows them (no text: "", no media: []), media_urls after media_ids, a
    retweet's original as its summary."""
    shaped: dict[str, Any] = {}
    for name in TIMELINE_ENTRY_ATTRIBUTES:
        if name == SHOWN_THROUGH_URLS:
            continue
        shaped[SHOWN_AS.get(name, name)] = item.get(name)
        if name == "media_ids":
            shaped["media_ids"] = list(shaped["media_ids"] or [])
            shaped["media_urls"] = _media_urls(item, shaped["media_ids"], urls)
    shaped["text"] = shaped["text"] or ""  # a retweet stores none; a tweet shows it as ""
    if shaped["original"] is not None:
        shaped["original"] = original_summary(shaped["original"], urls)
    return shaped


def original_summary(original: Mapping[str, Any], urls: MediaUrls) -> dict[str, Any]:
    """A retweet's original as stored on its entry (SUMMARY_ATTRIBUTES), shown as Tweet.summary_json."""
    media_ids = list(original.get("media_ids") or [])
    return {
        "id": original.get("tweet_id"),
        "author": original.get("author_id"),
        "created_at": original.get("created_at"),
        "text": original.get("text", ""),
        "media_ids": media_ids,
        "media_urls": _media_urls(original, media_ids, urls),
    }


def _media_urls(item: Mapping[str, Any], media_ids: list[str], urls: MediaUrls) -> list[str]:
    """The URLs of a stored tweet's media: its author's objects, pinned where a version is stored."""
    if not media_ids:
        return []
    versions = item.get(SHOWN_THROUGH_URLS)
    return urls.urls(item["author_id"], media_ids, versions if isinstance(versions, Mapping) else None)
