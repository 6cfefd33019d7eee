"""The tweet model: item and JSON shapes round-trip, and the time comes from the ID."""

from __future__ import annotations

from aviary.ids import new_ulid
from aviary.tweets import Tweet

TWEET_ID = new_ulid(1_763_754_314_123, bytes(10))


def test_item_round_trip_keeps_every_field():
    tweet = Tweet(
        tweet_id=TWEET_ID,
        author_id="alice",
        created_at=Tweet.created_at_of(TWEET_ID),
        text="hello",
        reply_to=new_ulid(1_763_754_300_000, bytes(10)),
        media_ids=(new_ulid(1_763_754_310_000, bytes(10)),),
        like_count=3,
    )
    assert Tweet.from_item(tweet.to_item()) == tweet


def test_absent_optionals_are_left_out_of_the_item():
    item = Tweet(TWEET_ID, "alice", Tweet.created_at_of(TWEET_ID), "hi").to_item()
    assert set(item) == {"tweet_id", "author_id", "created_at", "text", "deleted", "like_count"}


def test_created_at_is_the_ulid_time_in_fixed_width_utc():
    assert Tweet.created_at_of(TWEET_ID) == "2025-11-21T19:45:14.123Z"


def test_a_tombstone_reads_back_with_empty_text():
    item = Tweet(TWEET_ID, "alice", Tweet.created_at_of(TWEET_ID), "", deleted=True).to_item()
    assert "text" not in item
    assert Tweet.from_item(item).text == "" and Tweet.from_item(item).deleted
