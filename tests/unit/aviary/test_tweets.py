"""The tweet model: item and JSON shapes round-trip, and the time comes from the ID."""

from __future__ import annotations

from aviary.ids import new_ulid
from aviary.media_urls import MediaUrls
from aviary.tweets import SUMMARY_ATTRIBUTES, Tweet

TWEET_ID = new_ulid(1_763_754_314_123, bytes(10))
MEDIA = (new_ulid(1_763_754_310_000, bytes(10)), new_ulid(1_763_754_311_000, bytes(10)))
URLS = MediaUrls("https://media.aviary.example.com")


def test_item_round_trip_keeps_every_field():
    tweet = Tweet(
        tweet_id=TWEET_ID,
        author_id="alice",
        created_at=Tweet.created_at_of(TWEET_ID),
        text="hello",
        reply_to=new_ulid(1_763_754_300_000, bytes(10)),
        media_ids=MEDIA,
        media_versions={MEDIA[1]: "version-1"},
        like_count=3,
    )
    assert Tweet.from_item(tweet.to_item()) == tweet
    assert tweet.to_item()["media_versions"] == {"M": {MEDIA[1]: {"S": "version-1"}}}


def test_absent_optionals_are_left_out_of_the_item():
    item = Tweet(TWEET_ID, "alice", Tweet.created_at_of(TWEET_ID), "hi").to_item()
    assert set(item) == {"tweet_id", "author_id", "created_at", "text", "deleted", "like_count"}


def test_created_at_is_the_ulid_time_in_fixed_width_utc():
    assert Tweet.created_at_of(TWEET_ID) == "2025-11-21T19:45:14.123Z"


def test_a_tombstone_reads_back_with_empty_text():
    item = Tweet(TWEET_ID, "alice", Tweet.created_at_of(TWEET_ID), "", deleted=True).to_item()
    assert "text" not in item
    assert Tweet.from_item(item).text == "" and Tweet.from_item(item).deleted


def test_only_versions_of_the_tweets_own_media_are_stored():
    tweet = Tweet(
        TWEET_ID,
        "alice",
        Tweet.created_at_of(TWEET_ID),
        "hi",
        media_ids=MEDIA[:1],
        media_versions={MEDIA[1]: "not this tweet's"},
    )
    assert "media_versions" not in tweet.to_item()


def test_the_json_shows_media_urls_beside_media_ids_and_so_does_the_summary():
    tweet = Tweet(
        TWEET_ID,
        "alice",
        Tweet.created_at_of(TWEET_ID),
        "pictures",
        media_ids=MEDIA,
        media_versions={MEDIA[0]: "v0"},
    )
    shown = tweet.to_json(URLS)

    assert list(shown)[list(shown).index("media_ids") + 1] == "media_urls"
    assert shown["media_urls"] == [
        f"https://media.aviary.example.com/media/alice/{MEDIA[0]}?versionId=v0",
        f"https://media.aviary.example.com/media/alice/{MEDIA[1]}",
    ]
    assert "media_versions" not in shown
    assert tweet.summary_json(URLS) == {
        "id": TWEET_ID,
        "author": "alice",
        "created_at": tweet.created_at,
        "text": "pictures",
        "media_ids": list(MEDIA),
        "media_urls": shown["media_urls"],
    }


def test_a_retweets_summary_of_its_original_keeps_the_versions():
    original = Tweet(
        TWEET_ID,
        "alice",
        Tweet.created_at_of(TWEET_ID),
        "x",
        media_ids=MEDIA,
        media_versions={MEDIA[1]: "v1"},
    )
    summary = original.summary_item()["M"]

    assert set(summary) == set(SUMMARY_ATTRIBUTES)
    assert Tweet.from_item(summary).media_versions == {MEDIA[1]: "v1"}
