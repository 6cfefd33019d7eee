"""Query parameters, cursors and the merge of materialised entries with celebrities' tweets."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aviary.errors import ValidationError
from aviary.keys import timeline_entry_key
from aviary.media_urls import MediaUrls
from aviary.timeline import decode_cursor, encode_cursor, merge_timeline, parse_limit
from aviary.timeline_store import plain
from aviary.tweets import Tweet

EPOCH = datetime(2026, 11, 21, 19, 45, 14, 123000, tzinfo=UTC)
URLS = MediaUrls("https://media.aviary.example.com")
# What an item shows, in order: a tweet's fields without its counts and state.
ITEM_FIELDS = [
    "id",
    "author",
    "created_at",
    "text",
    "reply_to",
    "retweet_of",
    "media_ids",
    "media_urls",
    "original",
]


def created_at(offset_ms: int) -> str:
    moment = EPOCH + timedelta(milliseconds=offset_ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def ulid(n: int) -> str:
    return f"01JD{n:022d}"


def tweet(n: int, offset_ms: int | None = None, author: str = "bob") -> dict:
    return {
        "tweet_id": ulid(n),
        "author_id": author,
        "created_at": created_at(n if offset_ms is None else offset_ms),
        "text": f"tweet {n}",
    }


@pytest.mark.parametrize(("raw", "expected"), [(None, 20), ("", 20), ("1", 1), ("100", 100), ("07", 7)])
def test_limit_defaults_to_20_and_accepts_1_to_100(raw, expected):
    assert parse_limit(raw) == expected


@pytest.mark.parametrize("raw", ["0", "101", "-1", "abc", "1.5", " 5", "5 ", "1e2", "+5", "٣", "9" * 5000])
def test_a_bad_limit_names_the_field(raw):
    with pytest.raises(ValidationError) as caught:
        parse_limit(raw)
    assert caught.value.field == "limit"
    assert "1 to 100" in caught.value.message
    assert len(caught.value.message) < 300  # a huge value is not echoed back whole


def test_a_cursor_round_trips_and_is_url_safe():
    key = timeline_entry_key(created_at(0), ulid(7))
    cursor = encode_cursor(key)
    assert decode_cursor(cursor) == key
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@pytest.mark.parametrize("raw", [None, ""])
def test_no_cursor_means_the_first_page(raw):
    assert decode_cursor(raw) is None


@pytest.mark.parametrize(
    "raw",
    [
        "!!!",
        "abc",
        "é",
        "a" * 1000,
        base64.urlsafe_b64encode(b"not an entry key").decode(),
        base64.urlsafe_b64encode(b"2026-11-21T19:45:14.123Z#short").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_a_bad_cursor_names_the_field(raw):
    with pytest.raises(ValidationError) as caught:
        decode_cursor(raw)
    assert caught.value.field == "cursor"


@given(st.text(max_size=200))
def test_decoding_any_text_is_a_cursor_or_a_validation_error(raw):
    try:
        decode_cursor(raw)
    except ValidationError as error:
        assert error.field == "cursor"


@given(st.text(max_size=50))
def test_parsing_any_text_is_a_limit_or_a_validation_error(raw):
    try:
        assert 1 <= parse_limit(raw) <= 100
    except ValidationError as error:
        assert error.field == "limit"


def test_merge_orders_newest_first_and_fills_every_attribute():
    page = merge_timeline([tweet(1), tweet(3)], [tweet(2, author="celeb")], limit=10, cursor=None, urls=URLS)
    assert [item["id"] for item in page["items"]] == [ulid(3), ulid(2), ulid(1)]
    assert all(list(item) == ITEM_FIELDS for item in page["items"])
    assert page["items"][0]["reply_to"] is None
    assert page["next_cursor"] is None


def test_an_item_has_a_tweets_field_names_and_nothing_a_tweet_lacks():
    # One shape for one thing: an item is a tweet without its counts and state.
    stored = {**tweet(1), "reply_to": ulid(0), "media_ids": ["m1"]}
    [item] = merge_timeline([stored], [], limit=10, cursor=None, urls=URLS)["items"]
    shown = Tweet.from_item({name: {"S": value} for name, value in tweet(1).items()}).to_json(URLS)

    assert list(item) == [name for name in shown if name in item]
    assert set(shown) - set(item) == {"like_count", "deleted", "reply_to_deleted"}
    assert item == {
        "id": ulid(1),
        "author": "bob",
        "created_at": created_at(1),
        "text": "tweet 1",
        "reply_to": ulid(0),
        "retweet_of": None,
        "media_ids": ["m1"],
        # Stored before versions were kept: the URL names the key alone.
        "media_urls": ["https://media.aviary.example.com/media/bob/m1"],
        "original": None,
    }


def test_an_items_media_urls_follow_media_ids_pinned_as_the_tweet_shows_them():
    posted = Tweet(
        ulid(1),
        "bob",
        created_at(1),
        "three pictures",
        media_ids=("m3", "m1", "m2"),
        media_versions={"m1": "v1", "m3": "v=3"},  # m2 was accepted from an unversioned bucket
    )
    # As the fan-out stores the tweet and the store reads the entry back.
    stored = {name: plain(value) for name, value in posted.to_item().items()}

    [item] = merge_timeline([stored], [], limit=10, cursor=None, urls=URLS)["items"]

    assert item["media_ids"] == ["m3", "m1", "m2"]
    assert item["media_urls"] == [
        "https://media.aviary.example.com/media/bob/m3?versionId=v%3D3",
        "https://media.aviary.example.com/media/bob/m1?versionId=v1",
        "https://media.aviary.example.com/media/bob/m2",
    ]
    assert "media_versions" not in item  # shown only inside the URLs
    shown = posted.to_json(URLS)
    assert {name: shown[name] for name in item} == item


def test_a_retweets_original_is_shown_as_a_tweet_shows_it():
    original = Tweet(
        ulid(1), "alice", created_at(1), "the original", media_ids=("m1",), media_versions={"m1": "v1"}
    )
    # As the store hands over a retweet's entry: no text of its own, its original's summary.
    retweet = {**tweet(2), "retweet_of": ulid(1), "original": plain(original.summary_item())}
    del retweet["text"]

    [item] = merge_timeline([retweet], [], limit=10, cursor=None, urls=URLS)["items"]

    shown = Tweet(ulid(2), "bob", created_at(2), "", retweet_of=ulid(1), original=original).to_json(URLS)
    assert item["text"] == shown["text"] == ""  # a retweet has no text of its own
    assert item["media_ids"] == item["media_urls"] == []  # nor media
    assert (
        item["original"]
        == shown["original"]
        == original.summary_json(URLS)
        == {
            "id": ulid(1),
            "author": "alice",
            "created_at": created_at(1),
            "text": "the original",
            "media_ids": ["m1"],
            "media_urls": ["https://media.aviary.example.com/media/alice/m1?versionId=v1"],
        }
    )


def test_an_item_without_media_has_empty_lists_as_a_tweet_has():
    page = merge_timeline([tweet(1)], [], 10, None, urls=URLS)
    assert page["items"][0]["media_ids"] == []
    assert page["items"][0]["media_urls"] == []
    assert page["items"][0]["reply_to"] is None


def test_merge_shows_a_tweet_from_both_sources_once():
    page = merge_timeline([tweet(1), tweet(2)], [tweet(2), tweet(3)], limit=10, cursor=None, urls=URLS)
    assert [item["id"] for item in page["items"]] == [ulid(3), ulid(2), ulid(1)]


def test_merge_orders_same_millisecond_tweets_by_id():
    same_time = [tweet(5, offset_ms=0), tweet(4, offset_ms=0)]
    page = merge_timeline(same_time, [tweet(6, offset_ms=0)], limit=10, cursor=None, urls=URLS)
    assert [item["id"] for item in page["items"]] == [ulid(6), ulid(5), ulid(4)]


def test_merge_gives_a_cursor_only_when_more_candidates_than_the_limit():
    exactly = merge_timeline([tweet(1), tweet(2)], [], limit=2, cursor=None, urls=URLS)
    assert exactly["next_cursor"] is None
    more = merge_timeline([tweet(1), tweet(2), tweet(3)], [], limit=2, cursor=None, urls=URLS)
    assert decode_cursor(more["next_cursor"]) == timeline_entry_key(created_at(2), ulid(2))


def test_merge_takes_only_items_older_than_the_cursor():
    cursor = timeline_entry_key(created_at(3), ulid(3))
    page = merge_timeline(
        [tweet(1), tweet(2)], [tweet(3), tweet(4), tweet(2)], limit=10, cursor=cursor, urls=URLS
    )
    assert [item["id"] for item in page["items"]] == [ulid(2), ulid(1)]


def test_merge_skips_items_it_cannot_place_in_time():
    broken = [
        {"tweet_id": ulid(9)},
        {"created_at": created_at(9)},
        {"tweet_id": 9, "created_at": created_at(9)},
    ]
    page = merge_timeline([*broken, tweet(1)], [], limit=10, cursor=None, urls=URLS)
    assert [item["id"] for item in page["items"]] == [ulid(1)]


@given(
    entry_ids=st.sets(st.integers(0, 60), max_size=40),
    celebrity_ids=st.sets(st.integers(0, 60), max_size=40),
    limit=st.integers(1, 12),
    same_millisecond=st.booleans(),
)
def test_paging_through_shows_every_tweet_once_newest_first(
    entry_ids, celebrity_ids, limit, same_millisecond
):
    """Each page takes limit + 1 candidates older than the cursor from each source, as the store does."""

    def make(n: int) -> dict:
        return tweet(n, offset_ms=(n // 3) if same_millisecond else n)

    def key(item: dict) -> str:
        return timeline_entry_key(item["created_at"], item["tweet_id"])

    entries = sorted((make(n) for n in entry_ids), key=key, reverse=True)
    celebrity = sorted((make(n) for n in celebrity_ids), key=key, reverse=True)
    shown: list[str] = []
    cursor = None
    for _ in range(100):
        older_entries = [e for e in entries if cursor is None or key(e) < cursor][: limit + 1]
        older_celebrity = [t for t in celebrity if cursor is None or key(t) < cursor][: limit + 1]
        page = merge_timeline(older_entries, older_celebrity, limit, cursor, urls=URLS)
        assert len(page["items"]) <= limit
        shown.extend(item["id"] for item in page["items"])
        if page["next_cursor"] is None:
            break
        cursor = decode_cursor(page["next_cursor"])
    everything = sorted({key(make(n)): ulid(n) for n in entry_ids | celebrity_ids}.items(), reverse=True)
    assert shown == [tweet_id for _, tweet_id in everything]
