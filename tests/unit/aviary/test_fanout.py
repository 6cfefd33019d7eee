"""Fan-out of tweets-table stream records into the Timelines table, against moto's DynamoDB."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from aviary.batches import BATCH_WRITE_MAX_ITEMS, BatchIncomplete
from aviary.fanout import (
    FanoutResult,
    LiveTweets,
    OriginalNotHereYet,
    TimelineTrimmer,
    TimelineWriter,
    entry_key,
    expires_at,
    timeline_entry,
)
from aviary.followers import FollowerDirectory
from aviary.keys import follows_sk, user_pk
from aviary.timeline import decode_cursor
from aviary.timeline_store import TimelineStore
from aviary.tweets import Tweet
from tests.timeline_writers import (
    BASE_URL,
    SAMPLE_EVERY,
    URLS,
    all_entries,
    build_service,
    expected_entries,
    fill_timeline,
    first_tweet,
    half_processed,
    ids,
    is_sampled,
    make_tweet,
    never_processed,
    retweet_of,
    seed_followers,
    store_tweets,
    stream_record,
    throttled,
    timeline_of,
    tombstone,
)
from tools.local_aws.counting_client import CountingClient

pytestmark = pytest.mark.usefixtures("aws_environment")


# -- entries -----------------------------------------------------------------------------------------


def test_an_entry_copies_the_timeline_attributes_and_expires_after_the_retention():
    tweet = make_tweet(
        1, reply_to="01JD0000000000000000000001", media_ids=("m1", "m2"), media_versions={"m2": "v2"}
    )
    entry = timeline_entry("bob", tweet, retention_days=30)
    created = datetime.fromisoformat(tweet.created_at.replace("Z", "+00:00"))
    assert entry == {
        "user_id": {"S": "bob"},
        "entry_key": {"S": f"{tweet.created_at}#{tweet.tweet_id}"},
        "tweet_id": {"S": tweet.tweet_id},
        "author_id": {"S": "alice"},
        "created_at": {"S": tweet.created_at},
        "text": {"S": "tweet 1 by alice"},
        "reply_to": {"S": "01JD0000000000000000000001"},
        "media_ids": {"L": [{"S": "m1"}, {"S": "m2"}]},
        "media_versions": {"M": {"m2": {"S": "v2"}}},  # the accepted versions the URLs pin
        "expires_at": {"N": str(int(created.timestamp()) + 30 * 86_400)},
    }


def test_absent_optionals_are_left_out_of_an_entry():
    entry = timeline_entry("bob", make_tweet(2))
    assert set(entry) == {"user_id", "entry_key", "tweet_id", "author_id", "created_at", "text", "expires_at"}


def test_expiry_counts_whole_days_from_the_tweet_time():
    assert expires_at("2026-11-21T00:00:00.999Z", 1) == int(datetime(2026, 11, 22, tzinfo=UTC).timestamp())


# -- follower directory ------------------------------------------------------------------------------


def test_a_user_without_a_count_has_no_followers(dynamo):
    client, tables = dynamo
    directory = FollowerDirectory(client, tables["social-graph"], tables["counts"])
    assert directory.follower_count("nobody") == 0
    assert list(directory.followers("nobody")) == []


def test_followers_come_from_the_social_graph_and_their_count_from_the_counts(dynamo):
    client, tables = dynamo
    seed_followers(client, tables, "alice", ["bob", "carol"])
    seed_followers(client, tables, "bob", ["alice"])  # not alice's follower
    directory = FollowerDirectory(client, tables["social-graph"], tables["counts"])
    assert directory.follower_count("alice") == 2
    assert sorted(directory.followers("alice")) == ["bob", "carol"]


def test_followers_follow_every_page():
    class Paged:
        def __init__(self) -> None:
            self.requests: list[dict[str, Any]] = []

        def query(self, **request: Any) -> dict[str, Any]:
            self.requests.append(dict(request))
            if "ExclusiveStartKey" not in request:
                return {"Items": [{"sk": {"S": "FOLLOWER#a"}}], "LastEvaluatedKey": {"k": {"S": "1"}}}
            return {"Items": [{"sk": {"S": "FOLLOWER#b"}}]}

    client = Paged()
    assert list(FollowerDirectory(client, "graph", "counts").followers("x")) == ["a", "b"]
    assert [r.get("ExclusiveStartKey") for r in client.requests] == [None, {"k": {"S": "1"}}]
    assert all(r["ProjectionExpression"] == "sk" and r["ConsistentRead"] is False for r in client.requests)


# -- insert ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("follower_count", [0, 1, 25, 26, 1000])
def test_a_post_reaches_the_author_and_every_follower_in_full_batches(dynamo, follower_count):
    client, tables = dynamo
    followers = [f"f{i:04d}" for i in range(follower_count)]
    seed_followers(client, tables, "alice", followers)
    counting = CountingClient(client, by_operation=True)
    tweet = make_tweet(1, media_ids=("m1",))

    result = build_service(counting, tables).handle(stream_record("INSERT", new=tweet))

    audience = ["alice", *followers]
    assert result == FanoutResult("insert", written=len(audience))
    assert all_entries(client, tables["timelines"]) == expected_entries({u: [tweet] for u in audience})
    batches = math.ceil(len(audience) / BATCH_WRITE_MAX_ITEMS)
    assert counting.calls["batch_write_item"] == batches
    assert counting.batch_sizes[:-1] == [BATCH_WRITE_MAX_ITEMS] * (batches - 1)
    assert counting.calls["get_item"] == 1


def test_a_celebrity_post_lands_only_in_the_authors_timeline(dynamo):
    client, tables = dynamo
    seed_followers(client, tables, "star", [f"f{i}" for i in range(6)])
    counting = CountingClient(client, by_operation=True)
    tweet = make_tweet(1, author="star")

    result = build_service(counting, tables, threshold=5).handle(stream_record("INSERT", new=tweet))

    assert result == FanoutResult("insert", written=1, celebrity=True)
    assert all_entries(client, tables["timelines"]) == expected_entries({"star": [tweet]})
    assert counting.calls == Counter(get_item=1, batch_write_item=1)  # followers never queried


def test_an_author_at_the_threshold_is_still_fanned_out(dynamo):
    client, tables = dynamo
    seed_followers(client, tables, "alice", ["bob", "carol"])
    tweet = make_tweet(1)
    result = build_service(client, tables, threshold=2).handle(stream_record("INSERT", new=tweet))
    assert result == FanoutResult("insert", written=3)


def test_a_self_follow_does_not_put_one_key_twice_into_a_batch(dynamo):
    client, tables = dynamo
    seed_followers(client, tables, "alice", ["alice", "bob"])
    tweet = make_tweet(1)
    build_service(client, tables).handle(stream_record("INSERT", new=tweet))
    assert all_entries(client, tables["timelines"]) == expected_entries({"alice": [tweet], "bob": [tweet]})


def test_an_inserted_tombstone_writes_nothing(dynamo):
    client, tables = dynamo
    counting = CountingClient(client, by_operation=True)
    result = build_service(counting, tables).handle(stream_record("INSERT", new=tombstone(make_tweet(1))))
    assert result == FanoutResult("ignore")
    assert counting.calls == Counter()


def test_an_item_that_is_not_a_tweet_is_ignored(dynamo):
    client, tables = dynamo
    record = stream_record("INSERT", new=make_tweet(1))
    del record["dynamodb"]["NewImage"]["created_at"]
    assert build_service(client, tables).handle(record) == FanoutResult("ignore")
    assert all_entries(client, tables["timelines"]) == []


# -- modify and remove -------------------------------------------------------------------------------


def test_a_like_count_change_writes_nothing(dynamo):
    client, tables = dynamo
    seed_followers(client, tables, "alice", ["bob"])
    tweet = make_tweet(1)
    liked = Tweet(**{**tweet.__dict__, "like_count": 1})
    counting = CountingClient(client, by_operation=True)
    result = build_service(counting, tables).handle(stream_record("MODIFY", new=liked, old=tweet))
    assert result == FanoutResult("ignore")
    assert counting.calls == Counter()


@pytest.mark.parametrize("follower_count", [0, 26, 1000])
def test_a_tombstone_removes_every_entry(dynamo, follower_count):
    client, tables = dynamo
    followers = [f"f{i:04d}" for i in range(follower_count)]
    seed_followers(client, tables, "alice", followers)
    service = build_service(client, tables)
    tweet, other = make_tweet(1), make_tweet(2)
    service.handle(stream_record("INSERT", new=tweet))
    service.handle(stream_record("INSERT", new=other))
    counting = CountingClient(client, by_operation=True)

    result = build_service(counting, tables).handle(
        stream_record("MODIFY", new=tombstone(tweet), old=tweet, sequence="200")
    )

    assert result == FanoutResult("delete", deleted=follower_count + 1)
    assert all_entries(client, tables["timelines"]) == expected_entries(
        {u: [other] for u in ["alice", *followers]}
    )
    assert counting.calls["batch_write_item"] == math.ceil((follower_count + 1) / BATCH_WRITE_MAX_ITEMS)


def test_removing_a_live_tweet_removes_its_entries(dynamo):
    client, tables = dynamo
    seed_followers(client, tables, "alice", ["bob", "carol"])
    service = build_service(client, tables)
    tweet = make_tweet(1)
    service.handle(stream_record("INSERT", new=tweet))
    assert service.handle(stream_record("REMOVE", old=tweet)) == FanoutResult("delete", deleted=3)
    assert all_entries(client, tables["timelines"]) == []


def test_an_insert_arriving_after_its_tombstone_leaves_no_entries(dynamo):
    # A redelivered, reordered or redriven INSERT can reach the fan-out after the tombstone's
    # MODIFY did; the tweet is deleted by then and must not come back.
    client, tables = dynamo
    seed_followers(client, tables, "alice", ["bob", "carol"])
    service = build_service(client, tables, live_tweets=LiveTweets(client, tables["tweets"]))
    tweet = make_tweet(1)
    store_tweets(client, tables, tombstone(tweet))
    service.handle(stream_record("MODIFY", new=tombstone(tweet), old=tweet))  # nothing to remove yet
    assert service.handle(stream_record("INSERT", new=tweet)) == FanoutResult("insert", written=3, deleted=3)
    assert all_entries(client, tables["timelines"]) == []


def test_an_insert_of_a_live_tweet_stays_after_the_liveness_check(dynamo):
    client, tables = dynamo
    seed_followers(client, tables, "alice", ["bob"])
    counting = CountingClient(client)
    service = build_service(counting, tables, live_tweets=LiveTweets(counting, tables["tweets"]))
    tweet = make_tweet(1)
    store_tweets(client, tables, tweet)
    assert service.handle(stream_record("INSERT", new=tweet)) == FanoutResult("insert", written=2)
    assert timeline_of(client, tables, "bob") == [tweet.tweet_id]
    assert counting.calls.count("get_item") == 2  # the author's follower count, then the liveness check


def test_a_retweets_entry_shows_its_original_which_the_retweet_item_does_not_copy(dynamo):
    client, tables = dynamo
    seed_followers(client, tables, "bob", ["reader"])
    service = build_service(client, tables, live_tweets=LiveTweets(client, tables["tweets"]))
    original = make_tweet(1, media_ids=("m1",), media_versions={"m1": "v1"})
    retweet = retweet_of(original, 2)
    store_tweets(client, tables, original, retweet)

    assert service.handle(stream_record("INSERT", new=retweet)) == FanoutResult("insert", written=2)

    [entry] = [e for e in all_entries(client, tables["timelines"]) if e["user_id"]["S"] == "reader"]
    assert "text" not in retweet.to_item()
    assert entry["retweet_of"] == {"S": original.tweet_id}
    assert entry["original"] == original.summary_item()
    assert entry["original"]["M"]["text"] == {"S": original.text}
    assert entry["original"]["M"]["media_versions"] == {"M": {"m1": {"S": "v1"}}}  # its URLs stay pinned


def test_deleting_an_original_buries_its_retweets_whose_entries_then_leave_every_timeline(dynamo):
    client, tables = dynamo
    seed_followers(client, tables, "alice", ["reader"])
    seed_followers(client, tables, "bob", ["bobs_reader"])
    service = build_service(client, tables, live_tweets=LiveTweets(client, tables["tweets"]))
    original = make_tweet(1)
    retweet, other = retweet_of(original, 2), retweet_of(original, 3, by="carol")
    store_tweets(client, tables, original, retweet, other)
    for tweet in (original, retweet, other):
        service.handle(stream_record("INSERT", new=tweet))
    assert timeline_of(client, tables, "bobs_reader") == [retweet.tweet_id]

    store_tweets(client, tables, tombstone(original))
    result = service.handle(stream_record("MODIFY", new=tombstone(original), old=original))

    assert result.retweets_buried == 2
    buried = client.get_item(TableName=tables["tweets"], Key={"tweet_id": {"S": retweet.tweet_id}})["Item"]
    assert buried["deleted"] == {"BOOL": True} and buried["deleted_with"] == {"S": original.tweet_id}
    # Each retweet's own tombstone record takes it out of its author's audience's timelines.
    for gone in (retweet, other):
        service.handle(stream_record("MODIFY", new=tombstone(gone), old=gone))
    assert all_entries(client, tables["timelines"]) == []


def test_a_retweet_reaching_a_region_after_its_original_was_deleted_there_is_buried_not_shown(dynamo):
    client, tables = dynamo
    seed_followers(client, tables, "bob", ["reader"])
    service = build_service(client, tables, live_tweets=LiveTweets(client, tables["tweets"]))
    original = make_tweet(1)
    retweet = retweet_of(original, 2)
    store_tweets(client, tables, tombstone(original), retweet)

    result = service.handle(stream_record("INSERT", new=retweet))

    assert (result.action, result.retweets_buried) == ("ignore", 1)
    assert all_entries(client, tables["timelines"]) == []
    stored = client.get_item(TableName=tables["tweets"], Key={"tweet_id": {"S": retweet.tweet_id}})["Item"]
    assert stored["deleted"] == {"BOOL": True}


def test_a_retweet_reaching_a_region_before_its_original_fails_to_be_retried_and_buries_nothing(dynamo):
    # Global tables do not replicate items in the order they were written: the retweet may come first.
    client, tables = dynamo
    seed_followers(client, tables, "bob", ["reader"])
    service = build_service(client, tables, live_tweets=LiveTweets(client, tables["tweets"]))
    original = make_tweet(1)
    retweet = retweet_of(original, 2)
    store_tweets(client, tables, retweet)

    with pytest.raises(OriginalNotHereYet):
        service.handle(stream_record("INSERT", new=retweet))
    stored = client.get_item(TableName=tables["tweets"], Key={"tweet_id": {"S": retweet.tweet_id}})["Item"]
    assert stored["deleted"] == {"BOOL": False}

    store_tweets(client, tables, original)  # it arrives; the retried record goes through
    assert service.handle(stream_record("INSERT", new=retweet)).action == "insert"
    assert {entry["user_id"]["S"] for entry in all_entries(client, tables["timelines"])} == {"bob", "reader"}


def test_a_celebrity_delete_touches_only_the_authors_timeline(dynamo):
    client, tables = dynamo
    seed_followers(client, tables, "star", [f"f{i}" for i in range(6)])
    service = build_service(client, tables, threshold=5)
    tweet = make_tweet(1, author="star")
    service.handle(stream_record("INSERT", new=tweet))
    result = service.handle(stream_record("MODIFY", new=tombstone(tweet), old=tweet))
    assert result == FanoutResult("delete", deleted=1, celebrity=True)
    assert all_entries(client, tables["timelines"]) == []


@pytest.mark.parametrize(
    "record",
    [
        stream_record("REMOVE", old=tombstone(make_tweet(1))),  # its entries went when it became one
        stream_record("MODIFY", new=tombstone(make_tweet(1)), old=tombstone(make_tweet(1))),
        stream_record("MODIFY", new=make_tweet(1), old=tombstone(make_tweet(1))),  # no resurrection
    ],
    ids=["remove-tombstone", "tombstone-again", "undelete"],
)
def test_changes_to_a_tombstone_write_nothing(dynamo, record):
    client, tables = dynamo
    counting = CountingClient(client, by_operation=True)
    assert build_service(counting, tables).handle(record) == FanoutResult("ignore")
    assert counting.calls == Counter()


# -- redelivery and throttling -----------------------------------------------------------------------


def test_redelivered_records_leave_the_same_items(dynamo):
    client, tables = dynamo
    followers = [f"f{i:02d}" for i in range(30)]
    seed_followers(client, tables, "alice", followers)
    service = build_service(client, tables)
    kept, deleted = make_tweet(1), make_tweet(2)
    batch = [
        stream_record("INSERT", new=kept, sequence="1"),
        stream_record("INSERT", new=deleted, sequence="2"),
        stream_record("MODIFY", new=tombstone(deleted), old=deleted, sequence="3"),
    ]
    for record in batch:
        service.handle(record)
    first = all_entries(client, tables["timelines"])
    for record in batch:
        service.handle(record)
    assert (
        all_entries(client, tables["timelines"])
        == first
        == expected_entries({u: [kept] for u in ["alice", *followers]})
    )


def test_unprocessed_items_are_sent_again_until_everything_is_written_once(dynamo):
    client, tables = dynamo
    followers = [f"f{i:02d}" for i in range(60)]
    seed_followers(client, tables, "alice", followers)
    counting = CountingClient(client, by_operation=True, fault=half_processed(client, times=4))
    sleeps: list[float] = []
    tweet = make_tweet(1)

    result = build_service(counting, tables, sleeps=sleeps).handle(stream_record("INSERT", new=tweet))

    assert result == FanoutResult("insert", written=61)
    assert all_entries(client, tables["timelines"]) == expected_entries(
        {u: [tweet] for u in ["alice", *followers]}
    )
    assert len(sleeps) == 4 and all(0 <= s <= 1.0 for s in sleeps)


def test_a_throttled_batch_fails_the_record_at_once_and_its_redelivery_writes_everything_once(dynamo):
    # botocore's standard retries (aviary.clients) were spent on it already: the event source retries.
    client, tables = dynamo
    seed_followers(client, tables, "alice", ["bob", "carol"])
    counting = CountingClient(client, by_operation=True, fault=throttled(times=1))
    sleeps: list[float] = []
    service = build_service(counting, tables, sleeps=sleeps)
    tweet = make_tweet(1)
    record = stream_record("INSERT", new=tweet)

    with pytest.raises(ClientError, match="ProvisionedThroughputExceeded"):
        service.handle(record)
    assert counting.calls["batch_write_item"] == 1 and sleeps == []

    assert service.handle(record) == FanoutResult("insert", written=3)
    assert all_entries(client, tables["timelines"]) == expected_entries(
        {u: [tweet] for u in ["alice", "bob", "carol"]}
    )


def test_persistent_unprocessed_items_raise_after_max_attempts(dynamo):
    client, tables = dynamo
    counting = CountingClient(client, by_operation=True, fault=never_processed)
    sleeps: list[float] = []
    writer = TimelineWriter(counting, tables["timelines"], sleep=sleeps.append, max_attempts=4)
    with pytest.raises(BatchIncomplete, match="1 of 1 BatchWriteItem requests to aviary-timelines"):
        writer.put_entries([timeline_entry("bob", make_tweet(1))])
    assert counting.calls["batch_write_item"] == 4
    assert len(sleeps) == 3  # between attempts, never after the last


def test_persistent_unprocessed_items_stop_at_the_first_chunk(dynamo):
    client, tables = dynamo
    counting = CountingClient(client, by_operation=True, fault=never_processed)
    writer = TimelineWriter(counting, tables["timelines"], sleep=lambda _s: None)
    entries = [timeline_entry(f"u{i}", make_tweet(1)) for i in range(30)]
    with pytest.raises(BatchIncomplete, match="25 of 25"):
        writer.put_entries(entries)
    assert counting.batch_sizes == [25] * 5  # the second chunk is never sent


def test_backoff_grows_exponentially_with_full_jitter(dynamo):
    client, tables = dynamo
    sleeps: list[float] = []
    writer = TimelineWriter(
        CountingClient(client, by_operation=True, fault=never_processed),
        tables["timelines"],
        sleep=sleeps.append,
        max_attempts=6,
        base_delay=0.1,
        max_delay=0.5,
        rng=random.Random(1),
    )
    with pytest.raises(BatchIncomplete):
        writer.delete_entries([entry_key("bob", make_tweet(1))])
    ceilings = [0.1, 0.2, 0.4, 0.5, 0.5]
    assert len(sleeps) == len(ceilings)
    assert all(0 <= s <= c for s, c in zip(sleeps, ceilings, strict=True))
    assert len(set(sleeps)) == len(sleeps)  # jittered, not a fixed schedule


def test_other_errors_are_not_retried(dynamo):
    client, tables = dynamo

    def invalid(name: str, _kwargs: dict[str, Any]) -> Any:
        raise ClientError({"Error": {"Code": "ValidationException", "Message": "bad"}}, "BatchWriteItem")

    counting = CountingClient(client, by_operation=True, fault=invalid)
    writer = TimelineWriter(counting, tables["timelines"], sleep=lambda _s: None)
    with pytest.raises(ClientError, match="ValidationException"):
        writer.put_entries([timeline_entry("bob", make_tweet(1))])
    assert counting.calls["batch_write_item"] == 1


def test_writes_go_in_chunks_of_exactly_25(dynamo):
    client, tables = dynamo
    counting = CountingClient(client, by_operation=True)
    writer = TimelineWriter(counting, tables["timelines"], sleep=lambda _s: None)
    assert writer.put_entries(timeline_entry(f"u{i:02d}", make_tweet(1)) for i in range(60)) == 60
    assert counting.batch_sizes == [25, 25, 10]
    assert writer.put_entries([]) == 0
    assert counting.calls["batch_write_item"] == 3


# -- the timeline cap -------------------------------------------------------------------------------


def timeline_queries(table: str, users: list[str]) -> Callable[[str, dict[str, Any]], Any]:
    """A fault that answers nothing and notes whose timeline each Query on `table` read."""

    def fault(name: str, kwargs: dict[str, Any]) -> Any:
        if name == "query" and kwargs["TableName"] == table:
            users.append(kwargs["ExpressionAttributeValues"][":user"]["S"])
        return None

    return fault


def test_sampling_is_a_deterministic_hash_of_user_and_tweet():
    writer = TimelineWriter(None, "timelines", sleep=lambda _s: None)
    first = TimelineTrimmer(None, "timelines", 10, writer=writer)
    again = TimelineTrimmer(None, "timelines", 10, writer=writer)
    pairs = [(f"user{i}", make_tweet(n)) for i in range(40) for n in range(80)]
    picks = [first.should_trim(user, tweet.tweet_id) for user, tweet in pairs]
    assert picks == [again.should_trim(user, tweet.tweet_id) for user, tweet in pairs]
    assert picks == [is_sampled(user, tweet) for user, tweet in pairs]
    expected = len(pairs) / SAMPLE_EVERY  # about one pair in SAMPLE_EVERY
    assert expected / 2 <= sum(picks) <= expected * 2
    every = TimelineTrimmer(None, "timelines", 10, sample_every=1, writer=writer)
    assert all(every.should_trim(user, tweet.tweet_id) for user, tweet in pairs)


@pytest.mark.parametrize("setting", ["max_entries", "sample_every", "max_deletes_per_trim"])
def test_trimmer_settings_must_be_positive(setting):
    options = {"max_entries": 10, "sample_every": 32, "max_deletes_per_trim": 500, setting: 0}
    writer = TimelineWriter(None, "timelines", sleep=lambda _s: None)
    with pytest.raises(ValueError, match=f"{setting} must be at least 1"):
        TimelineTrimmer(None, "timelines", writer=writer, **options)


@pytest.mark.parametrize("excess", [1, 24, 25, 26, 60])
def test_a_sampled_insert_deletes_exactly_the_oldest_entries_beyond_the_cap(dynamo, excess):
    client, tables = dynamo
    cap = 30
    seed_followers(client, tables, "alice", ["bob"])
    older = fill_timeline(client, tables, "bob", cap + excess - 1)
    tweet = first_tweet(1000, "alice", lambda t: is_sampled("bob", t) and not is_sampled("alice", t))
    counting = CountingClient(client, by_operation=True)

    result = build_service(counting, tables, max_entries=cap).handle(stream_record("INSERT", new=tweet))

    assert result == FanoutResult("insert", written=2, trimmed=excess)
    assert timeline_of(client, tables, "bob") == ids([*older, tweet])[excess:]
    assert timeline_of(client, tables, "alice") == [tweet.tweet_id]
    assert counting.calls["query"] == 2  # alice's followers, then bob's timeline keys
    deletes = [BATCH_WRITE_MAX_ITEMS] * (excess // BATCH_WRITE_MAX_ITEMS)
    assert counting.batch_sizes == [2, *deletes, *([excess % BATCH_WRITE_MAX_ITEMS] if excess % 25 else [])]


def test_a_timeline_at_or_under_the_cap_loses_nothing(dynamo):
    client, tables = dynamo
    older = fill_timeline(client, tables, "bob", 9)
    tweet = first_tweet(1000, "bob", lambda t: is_sampled("bob", t))
    result = build_service(client, tables, max_entries=10).handle(stream_record("INSERT", new=tweet))
    assert result == FanoutResult("insert", written=1, trimmed=0)
    assert timeline_of(client, tables, "bob") == ids([*older, tweet])


def test_a_fanout_trims_exactly_the_sampled_recipients(dynamo):
    client, tables = dynamo
    followers = [f"f{i:03d}" for i in range(200)]
    seed_followers(client, tables, "alice", followers)
    trimmed_users: list[str] = []
    counting = CountingClient(
        client, by_operation=True, fault=timeline_queries(tables["timelines"], trimmed_users)
    )
    tweet = make_tweet(1)

    result = build_service(counting, tables, max_entries=5, sample_every=8).handle(
        stream_record("INSERT", new=tweet)
    )

    expected = [user for user in ["alice", *followers] if is_sampled(user, tweet, 8)]
    assert 10 <= len(expected) <= 45  # about 201 / 8
    assert trimmed_users == expected  # one Query each, in fan-out order, after every entry is written
    assert result == FanoutResult("insert", written=201, trimmed=0)


def test_inserts_that_sample_no_recipient_query_no_timeline(dynamo):
    client, tables = dynamo
    # A small audience, so that many tweets sample none of it.
    followers = [f"f{i:02d}" for i in range(8)]
    seed_followers(client, tables, "alice", followers)
    fill_timeline(client, tables, "f00", 50)  # over the cap, but no write to it is sampled
    audience = ["alice", *followers]
    tweet = first_tweet(1000, "alice", lambda t: not any(is_sampled(user, t) for user in audience))
    trimmed_users: list[str] = []
    counting = CountingClient(
        client, by_operation=True, fault=timeline_queries(tables["timelines"], trimmed_users)
    )

    result = build_service(counting, tables, max_entries=10).handle(stream_record("INSERT", new=tweet))

    assert result == FanoutResult("insert", written=9)
    assert trimmed_users == []
    assert counting.calls == Counter(get_item=1, query=1, batch_write_item=1)  # the followers' page only
    assert len(timeline_of(client, tables, "f00")) == 51


def test_a_celebrity_insert_trims_only_the_authors_timeline(dynamo):
    client, tables = dynamo
    seed_followers(client, tables, "star", [f"f{i}" for i in range(6)])
    older = fill_timeline(client, tables, "star", 12)
    unsampled = first_tweet(1000, "star", lambda t: not is_sampled("star", t))
    sampled = first_tweet(2000, "star", lambda t: is_sampled("star", t))  # newer than `unsampled`
    counting = CountingClient(client, by_operation=True)
    service = build_service(counting, tables, threshold=5, max_entries=10)

    assert service.handle(stream_record("INSERT", new=unsampled)) == FanoutResult(
        "insert", written=1, celebrity=True
    )
    assert counting.calls == Counter(get_item=1, batch_write_item=1)
    assert service.handle(stream_record("INSERT", new=sampled)) == FanoutResult(
        "insert", written=1, celebrity=True, trimmed=4
    )
    assert counting.calls == Counter(get_item=2, batch_write_item=3, query=1)
    assert timeline_of(client, tables, "star") == ids([*older, unsampled, sampled])[4:]


def test_a_trim_never_deletes_more_than_its_limit(dynamo):
    client, tables = dynamo
    tweets = fill_timeline(client, tables, "bob", 25)
    limits: list[int] = []

    def note_limit(name: str, kwargs: dict[str, Any]) -> Any:
        if name == "query":
            limits.append(kwargs["Limit"])

    counting = CountingClient(client, by_operation=True, fault=note_limit)
    writer = TimelineWriter(counting, tables["timelines"], sleep=lambda _s: None)
    trimmer = TimelineTrimmer(counting, tables["timelines"], 5, max_deletes_per_trim=7, writer=writer)

    # Each trim deletes the entries just past the newest five; the older backlog waits for the next.
    assert trimmer.trim("bob") == 7
    assert timeline_of(client, tables, "bob") == ids(tweets[:13] + tweets[20:])
    assert [trimmer.trim("bob") for _ in range(3)] == [7, 6, 0]
    assert timeline_of(client, tables, "bob") == ids(tweets[20:])
    assert limits == [12] * 4  # never reads more than the cap plus one trim's deletes


def test_trim_reads_only_keys_newest_first_and_follows_every_page():
    class PagedTimeline:
        """Ten entries k09 (newest) .. k00, served newest first three to a page."""

        def __init__(self) -> None:
            self.keys = [f"k{i:02d}" for i in range(9, -1, -1)]
            self.queries: list[dict[str, Any]] = []
            self.deleted: list[str] = []

        def query(self, **request: Any) -> dict[str, Any]:
            self.queries.append(request)
            start = request.get("ExclusiveStartKey")
            index = self.keys.index(start["entry_key"]["S"]) + 1 if start else 0
            page = self.keys[index : index + min(3, request["Limit"])]
            response: dict[str, Any] = {
                "Items": [{"user_id": {"S": "bob"}, "entry_key": {"S": key}} for key in page]
            }
            if index + len(page) < len(self.keys):
                response["LastEvaluatedKey"] = {"user_id": {"S": "bob"}, "entry_key": {"S": page[-1]}}
            return response

        def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
            for request in RequestItems["timelines"]:
                self.deleted.append(request["DeleteRequest"]["Key"]["entry_key"]["S"])
            return {}

    client = PagedTimeline()
    writer = TimelineWriter(client, "timelines", sleep=lambda _s: None)
    trimmer = TimelineTrimmer(client, "timelines", 4, max_deletes_per_trim=100, writer=writer)

    assert trimmer.trim("bob") == 6
    assert client.deleted == ["k05", "k04", "k03", "k02", "k01", "k00"]
    assert [q.get("ExclusiveStartKey", {}).get("entry_key", {}).get("S") for q in client.queries] == [
        None,
        "k07",
        "k04",
        "k01",
    ]
    assert [q["Limit"] for q in client.queries] == [104, 101, 98, 95]
    for query in client.queries:
        names = query["ExpressionAttributeNames"]
        parts = [part.strip() for part in query["ProjectionExpression"].split(",")]
        projected = [names.get(part, part) for part in parts]
        assert sorted(projected) == ["entry_key", "user_id"]
        assert query["ScanIndexForward"] is False and query["ConsistentRead"] is False
        assert query["ExpressionAttributeValues"] == {":user": {"S": "bob"}}
        assert names[query["KeyConditionExpression"].split(" = ")[0]] == "user_id"


def test_trim_deletes_go_25_at_a_time_with_the_writers_retries(dynamo):
    client, tables = dynamo
    tweets = fill_timeline(client, tables, "bob", 65)
    counting = CountingClient(client, by_operation=True, fault=half_processed(client, times=3))
    sleeps: list[float] = []
    writer = TimelineWriter(counting, tables["timelines"], sleep=sleeps.append, rng=random.Random(3))
    trimmer = TimelineTrimmer(counting, tables["timelines"], 5, writer=writer)

    assert trimmer.trim("bob") == 60
    assert timeline_of(client, tables, "bob") == ids(tweets[60:])
    assert len(sleeps) == 3
    assert max(counting.batch_sizes) == BATCH_WRITE_MAX_ITEMS


def test_a_redelivered_sampled_insert_leaves_the_same_items(dynamo):
    client, tables = dynamo
    seed_followers(client, tables, "alice", ["bob", "carol"])
    fill_timeline(client, tables, "bob", 12)
    tweet = first_tweet(1000, "alice", lambda t: is_sampled("bob", t))
    service = build_service(client, tables, max_entries=10)
    record = stream_record("INSERT", new=tweet)

    first = service.handle(record)
    after_first = all_entries(client, tables["timelines"])
    again = service.handle(record)

    assert all_entries(client, tables["timelines"]) == after_first
    assert (first.written, first.trimmed) == (3, 3)
    assert (again.written, again.trimmed) == (3, 0)  # the same trim, with nothing left to delete
    assert len(timeline_of(client, tables, "bob")) == 10


def test_redelivering_a_whole_sequence_converges_when_every_write_trims(dynamo):
    client, tables = dynamo
    seed_followers(client, tables, "alice", ["bob"])
    service = build_service(client, tables, max_entries=5, sample_every=1)
    tweets = [make_tweet(n) for n in range(1, 9)]
    batch = [stream_record("INSERT", new=tweet, sequence=str(n)) for n, tweet in enumerate(tweets)]
    batch.append(stream_record("MODIFY", new=tombstone(tweets[-1]), old=tweets[-1], sequence="99"))

    for record in batch:
        service.handle(record)
    first = all_entries(client, tables["timelines"])
    for record in batch:
        service.handle(record)

    assert all_entries(client, tables["timelines"]) == first
    assert first == expected_entries({u: tweets[3:7] for u in ("alice", "bob")})


# -- the read side reads what the fan-out writes -----------------------------------------------------


def test_fanned_out_entries_are_what_the_timeline_store_reads(dynamo):
    client, tables = dynamo
    graph = tables["social-graph"]
    seed_followers(client, tables, "alice", ["reader", "someone"])
    seed_followers(client, tables, "star", ["reader", *(f"fan{i}" for i in range(5))])
    service = build_service(client, tables, threshold=5)
    first = make_tweet(1, media_ids=("m1", "m2"), media_versions={"m1": "v1"})
    reply = make_tweet(2, reply_to=first.tweet_id)
    celebrity = make_tweet(3, author="star", media_ids=("m3",), media_versions={"m3": "v3"})
    gone = make_tweet(4)
    # The celebrity's tweet is merged on read from the tweets table.
    client.put_item(TableName=tables["tweets"], Item=celebrity.to_item())
    for tweet in (first, reply, celebrity, gone):
        service.handle(stream_record("INSERT", new=tweet))
    service.handle(stream_record("MODIFY", new=tombstone(gone), old=gone))

    store = TimelineStore(
        client, tables["timelines"], graph, tables["tweets"], tables["counts"], 5, urls=URLS
    )
    page = store.read_page("reader", 10, None)

    assert page["next_cursor"] is None
    assert [item["id"] for item in page["items"]] == [
        celebrity.tweet_id,
        reply.tweet_id,
        first.tweet_id,
    ]
    assert page["items"][1] == {
        "id": reply.tweet_id,
        "author": "alice",
        "created_at": reply.created_at,
        "text": reply.text,
        "reply_to": first.tweet_id,
        "retweet_of": None,
        "media_ids": [],
        "media_urls": [],
        "original": None,
    }
    # Fanned out with the tweet: the pinned versions, so the page is read without the media table.
    assert page["items"][2]["media_ids"] == ["m1", "m2"]
    assert page["items"][2]["media_urls"] == [
        f"{BASE_URL}/media/alice/m1?versionId=v1",
        f"{BASE_URL}/media/alice/m2",
    ]
    # Merged on read from the tweets table: the same.
    assert page["items"][0]["media_urls"] == [f"{BASE_URL}/media/star/m3?versionId=v3"]
    assert store.read_page("star", 10, None)["items"][0]["id"] == celebrity.tweet_id


def test_the_timeline_store_reads_the_newest_entries_of_a_trimmed_timeline(dynamo):
    client, tables = dynamo
    cap = 20
    seed_followers(client, tables, "alice", ["bob"])
    seed_followers(client, tables, "carol", ["bob"])  # the author of the older entries
    older = fill_timeline(client, tables, "bob", cap + 6)
    tweet = first_tweet(1000, "alice", lambda t: is_sampled("bob", t))
    service = build_service(client, tables, max_entries=cap)
    assert service.handle(stream_record("INSERT", new=tweet)).trimmed == 7
    newest_first = ids(reversed([*older, tweet]))[:cap]

    store = TimelineStore(
        client, tables["timelines"], tables["social-graph"], tables["tweets"], tables["counts"], 5, urls=URLS
    )
    whole = store.read_page("bob", cap + 10, None)
    assert [item["id"] for item in whole["items"]] == newest_first
    assert whole["next_cursor"] is None

    # Page by page, a reader sees the same newest entries and then the end.
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = store.read_page("bob", 7, cursor)
        seen.extend(item["id"] for item in page["items"])
        if page["next_cursor"] is None:
            break
        cursor = decode_cursor(page["next_cursor"])
    assert seen == newest_first


def test_a_celebritys_retweets_merged_on_read_show_their_originals_unless_deleted(dynamo):
    client, tables = dynamo
    graph = tables["social-graph"]
    seed_followers(client, tables, "star", [f"fan{i}" for i in range(6)])
    client.put_item(TableName=graph, Item={"pk": {"S": user_pk("reader")}, "sk": {"S": follows_sk("star")}})
    kept = make_tweet(1, author="alice", media_ids=("m1",), media_versions={"m1": "v1"})
    gone = make_tweet(2, author="alice")
    retweets = [retweet_of(kept, 3, by="star"), retweet_of(gone, 4, by="star")]
    store_tweets(client, tables, kept, tombstone(gone), *retweets)

    store = TimelineStore(
        client, tables["timelines"], graph, tables["tweets"], tables["counts"], 5, urls=URLS
    )
    page = store.read_page("reader", 10, None)

    assert [item["id"] for item in page["items"]] == [retweets[0].tweet_id]
    assert (
        page["items"][0]["original"]
        == kept.summary_json(URLS)
        == {
            "id": kept.tweet_id,
            "author": "alice",
            "created_at": kept.created_at,
            "text": kept.text,
            "media_ids": ["m1"],
            "media_urls": [f"{BASE_URL}/media/alice/m1?versionId=v1"],
        }
    )
