"""The tweet write path against moto DynamoDB: every rule, and that a failed check writes nothing."""

from __future__ import annotations

import json
from itertools import count
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from aviary.clients import AWS_CONFIG
from aviary.counts import LIKES_COUNTER, Counts
from aviary.errors import Conflict, Forbidden, NotFound, ServiceUnavailable, ValidationError
from aviary.ids import new_ulid
from aviary.keys import idempotency_id, like_sk, retweet_sk, tweet_pk, user_pk
from aviary.media_urls import MediaUrls
from aviary.naming import table_name
from aviary.schema import COUNTS, IDEMPOTENCY, SOCIAL_GRAPH, TWEETS
from aviary.tweet_service import TweetService, request_hash, tweet_from_json, tweet_to_json
from aviary.tweets import Tweet
from tests.graph_stream import count_graph_stream
from tools.local_aws.counting_client import CountingClient
from tools.local_aws.tables import create_tables

REGION = "us-east-1"
NOW_MS = 1_800_000_000_123
TTL = 86_400
TABLES = {schema.role: table_name(schema) for schema in (TWEETS, SOCIAL_GRAPH, IDEMPOTENCY, COUNTS)}
KEY = "key-0001-abcdef"
MEDIA = ("01KD0000000000000000000001", "01KD0000000000000000000002")
# The version each of alice's uploads was accepted as; the second came from a bucket that does not version.
ACCEPTED_VERSIONS = {MEDIA[0]: "version-a"}
URLS = MediaUrls("https://media.aviary.example.com")


@pytest.fixture
def dynamodb():
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION, config=AWS_CONFIG)
        create_tables(client, [TWEETS, SOCIAL_GRAPH, IDEMPOTENCY, COUNTS])
        yield client


class FailingTransactions(CountingClient):
    """The real client, except that every transaction fails with `error`."""

    def __init__(self, client: Any, error: ClientError) -> None:
        super().__init__(client)
        self.error = error

    def transact_write_items(self, **_: Any) -> None:
        raise self.error


class RecordingTransactions(CountingClient):
    """The real client, also keeping every transaction's items."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.transactions: list[list[dict[str, Any]]] = []

    def transact_write_items(self, **kwargs: Any) -> Any:
        self.calls.append("transact_write_items")
        self.transactions.append(kwargs["TransactItems"])
        return self._client.transact_write_items(**kwargs)


class UnprocessedBatchGets(CountingClient):
    """The real client, except that the first `times` BatchGetItem calls process nothing."""

    def __init__(self, client: Any, times: int) -> None:
        super().__init__(client)
        self.times = times

    def batch_get_item(self, **kwargs: Any) -> Any:
        self.calls.append("batch_get_item")
        if self.times > 0:
            self.times -= 1
            return {"Responses": {}, "UnprocessedKeys": kwargs["RequestItems"]}
        return self._client.batch_get_item(**kwargs)


class FakeMediaChecker:
    """Media is ready when it is in `ready` under its owner, accepted as its version in `versions` if
    it has one; records what it was asked."""

    def __init__(
        self, ready: dict[str, set[str]] | None = None, versions: dict[str, str] | None = None
    ) -> None:
        self.ready = ready or {}
        self.versions = versions or {}
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    def assert_ready(self, owner: str, media_ids: tuple[str, ...]) -> dict[str, str]:
        self.calls.append((owner, media_ids))
        for media_id in media_ids:
            if media_id not in self.ready.get(owner, set()):
                raise ValidationError(f"media {media_id} is not ready", field="media_ids")
        return {media_id: self.versions[media_id] for media_id in media_ids if media_id in self.versions}


class Clock:
    def __init__(self, now_ms: int = NOW_MS) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


class CountingRandom:
    """Deterministic 'random' bytes: 1, 2, 3, ... so successive IDs are known and sort in order."""

    def __init__(self) -> None:
        self._counter = count(1)

    def __call__(self, n: int) -> bytes:
        return next(self._counter).to_bytes(n, "big")


def expected_id(n: int, now_ms: int = NOW_MS) -> str:
    """The ID of the n-th tweet a fresh service makes at `now_ms`."""
    return new_ulid(now_ms, n.to_bytes(10, "big"))


class World:
    """A service over moto tables with a fixed clock, counted random bytes and a fake media checker."""

    def __init__(self, dynamodb: Any, client: Any = None) -> None:
        self.dynamodb = dynamodb
        self.client = client or CountingClient(dynamodb)
        self.clock = Clock()
        self.sleeps: list[float] = []
        self.media = FakeMediaChecker({"alice": set(MEDIA)}, ACCEPTED_VERSIONS)
        self.service = TweetService(
            self.client,
            tweets_table=TABLES["tweets"],
            social_graph_table=TABLES["social-graph"],
            idempotency_table=TABLES["idempotency"],
            counts_table=TABLES["counts"],
            media_checker=self.media,
            clock_ms=self.clock,
            random_bytes=CountingRandom(),
            idempotency_ttl_seconds=TTL,
            sleep=self.sleeps.append,
        )

    def items(self, role: str) -> list[dict[str, Any]]:
        found = self.dynamodb.scan(TableName=TABLES[role], ConsistentRead=True)["Items"]
        return sorted(found, key=lambda item: json.dumps(item, sort_keys=True))

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        return {role: self.items(role) for role in TABLES}

    def tweet_item(self, tweet_id: str) -> dict[str, Any] | None:
        key = {"tweet_id": {"S": tweet_id}}
        return self.dynamodb.get_item(TableName=TABLES["tweets"], Key=key, ConsistentRead=True).get("Item")

    def graph_item(self, pk: str, sk: str) -> dict[str, Any] | None:
        key = {"pk": {"S": pk}, "sk": {"S": sk}}
        return self.dynamodb.get_item(TableName=TABLES["social-graph"], Key=key, ConsistentRead=True).get(
            "Item"
        )

    def count_likes(self) -> None:
        """What the region's graph-stream consumer does: count the like edges (aviary.counts)."""
        count_graph_stream(self.dynamodb, TABLES["social-graph"], TABLES["counts"], REGION)

    def counter_item(self, tweet_id: str) -> dict[str, Any] | None:
        key = Counts.likes_key(tweet_id)
        return self.dynamodb.get_item(TableName=TABLES["counts"], Key=key, ConsistentRead=True).get("Item")

    def like_count(self, tweet_id: str) -> int:
        """The tweet's like count once the graph's stream is counted (the tweet item has none)."""
        self.count_likes()
        item = self.counter_item(tweet_id)
        assert item is not None
        return int(item["n"]["N"])


@pytest.fixture
def world(dynamodb) -> World:
    return World(dynamodb)


def cancelled(*codes: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
            "CancellationReasons": [{"Code": code} for code in codes],
        },
        "TransactWriteItems",
    )


# -- post --------------------------------------------------------------------------------------------


def test_post_writes_the_tweet_and_the_idempotency_record(world):
    tweet, created = world.service.post("alice", KEY, "hello world")

    assert created is True
    assert tweet == Tweet(
        tweet_id=expected_id(1),
        author_id="alice",
        created_at="2027-01-15T08:00:00.123Z",
        text="hello world",
    )
    assert tweet.created_at == Tweet.created_at_of(tweet.tweet_id)
    assert world.tweet_item(tweet.tweet_id) == tweet.to_item()
    (record,) = world.items("idempotency")
    assert record == {
        "id": {"S": idempotency_id("post-tweet", "alice", KEY)},
        "request_hash": {"S": request_hash("hello world", None, ())},
        "tweet_id": {"S": tweet.tweet_id},
        "response": {"S": record["response"]["S"]},
        "expiration": {"N": str(NOW_MS // 1000 + TTL)},
    }
    assert json.loads(record["response"]["S"]) == tweet_to_json(tweet)


def test_post_without_reply_is_exactly_one_dynamodb_call(world):
    world.service.post("alice", KEY, "hello")

    assert world.client.calls == ["transact_write_items"]
    assert world.media.calls == []  # no media, no check


def test_a_retry_with_the_same_key_and_body_returns_the_same_tweet_and_writes_nothing(world):
    first, _ = world.service.post("alice", KEY, "hello", media_ids=MEDIA)
    before = world.snapshot()
    world.clock.now_ms += 5_000  # a retry comes later; the stored tweet keeps its own time

    again, created = world.service.post("alice", KEY, "hello", media_ids=list(MEDIA))

    assert created is False
    assert again == first
    assert world.snapshot() == before
    assert len(before["tweets"]) == 1
    assert len(before["idempotency"]) == 1


def test_the_same_key_with_a_different_body_is_a_conflict_and_writes_nothing(world):
    world.service.post("alice", KEY, "hello")
    before = world.snapshot()

    for changed in (
        {"text": "hello!"},
        {"text": "hello", "media_ids": MEDIA[:1]},
    ):
        with pytest.raises(Conflict) as caught:
            world.service.post("alice", KEY, **changed)
        assert caught.value.http_status == 409
        assert caught.value.field == "Idempotency-Key"
        assert "different" in caught.value.message
        assert "new key" in caught.value.message

    assert world.snapshot() == before


def test_two_users_with_the_same_key_do_not_collide(world):
    alice, alice_created = world.service.post("alice", KEY, "hello")
    bob, bob_created = world.service.post("bob", KEY, "hello")

    assert alice_created and bob_created
    assert alice.tweet_id != bob.tweet_id
    assert bob.author_id == "bob"
    assert len(world.items("tweets")) == 2
    assert len(world.items("idempotency")) == 2


def test_different_keys_make_different_tweets(world):
    first, _ = world.service.post("alice", KEY, "hello")
    second, created = world.service.post("alice", "key-0002-abcdef", "hello")

    assert created is True
    assert second.tweet_id == expected_id(2)
    assert second.tweet_id > first.tweet_id


def test_a_key_can_be_reused_once_its_record_has_expired(world):
    first, _ = world.service.post("alice", KEY, "hello")
    world.clock.now_ms += (TTL + 1) * 1000  # expired, but TTL may not have swept the record yet

    second, created = world.service.post("alice", KEY, "something else")

    assert created is True
    assert second.tweet_id != first.tweet_id
    (record,) = world.items("idempotency")
    assert record["tweet_id"]["S"] == second.tweet_id


def test_a_reply_names_an_existing_tweet(world):
    original, _ = world.service.post("bob", "key-bob-00001", "original")
    world.client.calls.clear()

    reply, created = world.service.post("alice", KEY, "a reply", reply_to=original.tweet_id)

    assert created is True
    assert reply.reply_to == original.tweet_id
    assert world.tweet_item(reply.tweet_id)["reply_to"] == {"S": original.tweet_id}
    assert world.client.calls == ["get_item", "transact_write_items"]


def test_a_reply_to_a_missing_tweet_is_not_found_and_writes_nothing(world):
    before = world.snapshot()

    with pytest.raises(NotFound) as caught:
        world.service.post("alice", KEY, "a reply", reply_to=expected_id(99))

    assert caught.value.field == "reply_to"
    assert world.snapshot() == before


def test_a_reply_to_a_deleted_tweet_is_not_found_and_writes_nothing(world):
    original, _ = world.service.post("bob", "key-bob-00001", "original")
    world.service.delete("bob", original.tweet_id)
    before = world.snapshot()

    with pytest.raises(NotFound) as caught:
        world.service.post("alice", KEY, "a reply", reply_to=original.tweet_id)

    assert caught.value.field == "reply_to"
    assert world.snapshot() == before


def test_a_retried_reply_returns_its_tweet_even_after_the_parent_was_deleted(world):
    original, _ = world.service.post("bob", "key-bob-00001", "original")
    reply, _ = world.service.post("alice", KEY, "a reply", reply_to=original.tweet_id)
    world.service.delete("bob", original.tweet_id)
    before = world.snapshot()

    again, created = world.service.post("alice", KEY, "a reply", reply_to=original.tweet_id)

    assert (again, created) == (reply, False)
    assert world.snapshot() == before


def test_media_is_checked_for_the_author_before_writing(world):
    tweet, _ = world.service.post("alice", KEY, "look", media_ids=MEDIA)

    assert world.media.calls == [("alice", MEDIA)]
    assert tweet.media_ids == MEDIA
    assert tweet.media_versions == ACCEPTED_VERSIONS
    stored = world.tweet_item(tweet.tweet_id)
    assert stored["media_ids"] == {"L": [{"S": media_id} for media_id in MEDIA]}
    # Each accepted version is kept on the tweet, so a read needs no media table.
    assert stored["media_versions"] == {"M": {MEDIA[0]: {"S": "version-a"}}}
    assert world.service.get(tweet.tweet_id).media_versions == ACCEPTED_VERSIONS


def test_media_the_checker_rejects_writes_nothing(world):
    before = world.snapshot()

    with pytest.raises(ValidationError) as caught:
        world.service.post("bob", KEY, "not my media", media_ids=MEDIA)  # alice's uploads

    assert caught.value.field == "media_ids"
    assert world.media.calls == [("bob", MEDIA)]
    assert world.snapshot() == before


def test_a_tweet_id_collision_propagates(dynamodb):
    # Two services drawing the same "random" bytes at the same millisecond make the same ID.
    first, second = World(dynamodb), World(dynamodb)
    first.service.post("alice", KEY, "hello")

    with pytest.raises(ClientError):
        second.service.post("bob", KEY, "hello")

    assert len(first.items("tweets")) == 1
    assert len(first.items("idempotency")) == 1


@pytest.mark.parametrize(
    "error",
    [
        cancelled("TransactionConflict", "None"),
        ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow"}}, "TransactWriteItems"),
    ],
)
def test_other_dynamodb_failures_on_post_propagate(dynamodb, error):
    world = World(dynamodb, FailingTransactions(dynamodb, error))

    with pytest.raises(ClientError) as caught:
        world.service.post("alice", KEY, "hello")

    assert caught.value is error


def test_a_record_gone_between_the_check_and_the_read_asks_for_a_retry(dynamodb):
    world = World(dynamodb, FailingTransactions(dynamodb, cancelled("ConditionalCheckFailed", "None")))

    with pytest.raises(ServiceUnavailable):
        world.service.post("alice", KEY, "hello")


class LandedThenRetried(CountingClient):
    """The real client, except that a transaction is sent twice, as the SDK does when the first
    attempt timed out after it had landed: the caller sees only the second attempt's answer."""

    def transact_write_items(self, **kwargs: Any) -> Any:
        self.calls.append("transact_write_items")
        self._client.transact_write_items(**kwargs)
        return self._client.transact_write_items(**kwargs)


def test_a_post_whose_first_attempt_landed_is_answered_as_created_not_as_an_error(dynamodb):
    # moto, like DynamoDB without a ClientRequestToken, refuses the repeat: both items exist now.
    world = World(dynamodb, LandedThenRetried(dynamodb))

    tweet, created = world.service.post("alice", KEY, "hello")

    assert created is True
    assert tweet.tweet_id == expected_id(1)
    assert [item["tweet_id"]["S"] for item in world.items("tweets")] == [tweet.tweet_id]
    assert len(world.items("idempotency")) == 1


def test_a_repeat_whose_record_is_found_beside_other_failed_conditions_is_a_replay(dynamodb):
    world = World(dynamodb)
    first, _ = world.service.post("alice", KEY, "hello")
    both_failed = FailingTransactions(dynamodb, cancelled("ConditionalCheckFailed", "ConditionalCheckFailed"))
    again = World(dynamodb, both_failed)
    again.clock.now_ms += 2_000  # a later request: another tweet ID than the first one's

    tweet, created = again.service.post("alice", KEY, "hello")

    assert (tweet, created) == (first, False)


def test_the_request_hash_is_canonical():
    assert request_hash("hi", None, ()) == request_hash("hi", None, ())
    assert request_hash("hi", None, ()) != request_hash("hi ", None, ())
    assert request_hash("hi", None, MEDIA) != request_hash("hi", None, MEDIA[::-1])
    assert request_hash("hi", expected_id(1), ()) != request_hash("hi", None, ())
    assert len(request_hash("é", None, ())) == 64


def test_a_tweet_round_trips_through_its_json():
    tweet = Tweet(
        tweet_id=expected_id(1),
        author_id="alice",
        created_at=Tweet.created_at_of(expected_id(1)),
        text="hi",
        reply_to=expected_id(2),
        media_ids=MEDIA,
        media_versions=ACCEPTED_VERSIONS,
        like_count=3,
    )
    assert tweet_from_json(json.loads(json.dumps(tweet_to_json(tweet)))) == tweet


def test_a_record_stored_before_versions_were_kept_replays_with_unpinned_urls():
    # What an idempotency record held before: the tweet's API shape, without media versions.
    stored = {
        "id": expected_id(1),
        "author": "alice",
        "created_at": Tweet.created_at_of(expected_id(1)),
        "text": "hi",
        "reply_to": None,
        "retweet_of": None,
        "media_ids": list(MEDIA),
        "like_count": 0,
        "deleted": False,
        "original": None,
        "reply_to_deleted": None,
    }

    replayed = tweet_from_json(stored)

    assert replayed.media_versions == {}
    assert replayed.to_json(URLS)["media_urls"] == [f"{URLS.base_url}/media/alice/{m}" for m in MEDIA]


# -- get ---------------------------------------------------------------------------------------------


def test_get_returns_the_tweet(world):
    tweet, _ = world.service.post("alice", KEY, "hello")
    world.client.calls.clear()

    assert world.service.get(tweet.tweet_id) == tweet  # no counter item yet: like_count 0
    assert world.client.calls == ["batch_get_item"]


def test_get_reads_the_like_count_from_the_regions_counts(world):
    tweet, _ = world.service.post("bob", KEY, "likeable")
    for user in ("alice", "carol"):
        world.service.like(user, tweet.tweet_id)
    world.count_likes()
    world.client.calls.clear()

    got = world.service.get(tweet.tweet_id)

    assert got == Tweet(**{**tweet.__dict__, "like_count": 2})
    assert world.client.calls == ["batch_get_item"]  # the tweet and its count in one call


def test_get_never_shows_a_count_below_zero(world):
    tweet, _ = world.service.post("bob", KEY, "likeable")
    counter = {**Counts.likes_key(tweet.tweet_id), "n": {"N": "-1"}}
    world.dynamodb.put_item(TableName=TABLES["counts"], Item=counter)

    assert world.service.get(tweet.tweet_id).like_count == 0


def test_get_asks_again_for_keys_left_unprocessed(dynamodb):
    world = World(dynamodb, UnprocessedBatchGets(dynamodb, times=2))
    tweet, _ = world.service.post("bob", KEY, "likeable")
    world.service.like("alice", tweet.tweet_id)
    world.count_likes()

    assert world.service.get(tweet.tweet_id).like_count == 1
    assert world.client.calls.count("batch_get_item") == 3
    # Jittered backoff: up to 0.05 s before the second call, up to 0.1 s before the third.
    assert len(world.sleeps) == 2 and 0 <= world.sleeps[0] <= 0.05 and 0 <= world.sleeps[1] <= 0.1


def test_get_still_unprocessed_after_every_attempt_asks_for_a_retry(dynamodb):
    world = World(dynamodb, UnprocessedBatchGets(dynamodb, times=3))
    tweet, _ = world.service.post("bob", KEY, "likeable")

    with pytest.raises(ServiceUnavailable):
        world.service.get(tweet.tweet_id)


def test_get_of_a_missing_or_deleted_tweet_is_not_found(world):
    tweet, _ = world.service.post("alice", KEY, "hello")
    world.service.delete("alice", tweet.tweet_id)

    for tweet_id in (tweet.tweet_id, expected_id(99)):
        with pytest.raises(NotFound) as caught:
            world.service.get(tweet_id)
        assert caught.value.field == "id"


# -- delete ------------------------------------------------------------------------------------------


def test_delete_leaves_a_tombstone_without_text_or_media(world):
    tweet, _ = world.service.post("alice", KEY, "secret", media_ids=MEDIA)

    world.service.delete("alice", tweet.tweet_id)

    tombstone = world.tweet_item(tweet.tweet_id)
    assert tombstone["deleted"] == {"BOOL": True}
    assert "text" not in tombstone
    assert "media_ids" not in tombstone and "media_versions" not in tombstone
    assert tombstone["author_id"] == {"S": "alice"}
    assert tombstone["created_at"] == {"S": tweet.created_at}


def test_deleting_twice_is_fine(world):
    tweet, _ = world.service.post("alice", KEY, "hello")
    world.service.delete("alice", tweet.tweet_id)
    before = world.snapshot()

    world.service.delete("alice", tweet.tweet_id)

    assert world.snapshot() == before


def test_deleting_someone_elses_tweet_is_forbidden_and_changes_nothing(world):
    tweet, _ = world.service.post("alice", KEY, "mine")
    before = world.snapshot()

    with pytest.raises(Forbidden) as caught:
        world.service.delete("bob", tweet.tweet_id)

    assert caught.value.field == "id"
    assert world.snapshot() == before


def test_deleting_a_missing_tweet_is_not_found(world):
    with pytest.raises(NotFound) as caught:
        world.service.delete("alice", expected_id(99))

    assert caught.value.field == "id"
    assert world.items("tweets") == []  # the update did not create an item


# -- likes -------------------------------------------------------------------------------------------


def test_like_twice_counts_once(world):
    tweet, _ = world.service.post("bob", KEY, "likeable")

    assert world.service.like("alice", tweet.tweet_id) is True
    assert world.service.like("alice", tweet.tweet_id) is False

    assert world.like_count(tweet.tweet_id) == 1
    assert world.graph_item(tweet_pk(tweet.tweet_id), like_sk("alice")) is not None
    assert world.counter_item(tweet.tweet_id) == {
        "pk": {"S": tweet_pk(tweet.tweet_id)},
        "sk": {"S": LIKES_COUNTER},
        "n": {"N": "1"},
    }


def test_likes_from_different_users_add_up(world):
    tweet, _ = world.service.post("bob", KEY, "likeable")
    for user in ("alice", "carol", "bob"):
        world.service.like(user, tweet.tweet_id)

    assert world.like_count(tweet.tweet_id) == 3
    assert world.service.get(tweet.tweet_id).like_count == 3  # read from this region's counts


def test_unlike_twice_counts_once(world):
    tweet, _ = world.service.post("bob", KEY, "likeable")
    world.service.like("alice", tweet.tweet_id)

    assert world.service.unlike("alice", tweet.tweet_id) is True
    assert world.service.unlike("alice", tweet.tweet_id) is False

    assert world.like_count(tweet.tweet_id) == 0
    assert world.graph_item(tweet_pk(tweet.tweet_id), like_sk("alice")) is None


def test_unlike_without_a_like_changes_nothing(world):
    tweet, _ = world.service.post("bob", KEY, "likeable")
    before = world.snapshot()

    assert world.service.unlike("alice", tweet.tweet_id) is False
    assert world.snapshot() == before


def test_like_is_one_transaction(world):
    tweet, _ = world.service.post("bob", KEY, "likeable")
    world.client.calls.clear()

    world.service.like("alice", tweet.tweet_id)
    world.service.unlike("alice", tweet.tweet_id)

    assert world.client.calls == ["transact_write_items", "transact_write_items"]


def test_like_and_unlike_leave_the_tweet_item_untouched(dynamodb):
    # A global table keeps the last whole-item write: a like that wrote the tweet item could race a
    # delete in another region and bring the deleted text back. Likes only read the tweet item.
    world = World(dynamodb, RecordingTransactions(dynamodb))
    tweet, _ = world.service.post("bob", KEY, "likeable", media_ids=())
    raw = world.tweet_item(tweet.tweet_id)
    world.client.transactions.clear()

    assert world.service.like("alice", tweet.tweet_id) is True
    assert world.service.like("carol", tweet.tweet_id) is True
    assert world.service.like("alice", tweet.tweet_id) is False
    assert world.service.unlike("alice", tweet.tweet_id) is True
    assert world.service.unlike("alice", tweet.tweet_id) is False

    assert world.tweet_item(tweet.tweet_id) == raw
    assert world.like_count(tweet.tweet_id) == 1
    assert len(world.client.transactions) == 5
    for items in world.client.transactions:
        for item in items:
            ((kind, request),) = item.items()
            assert request["TableName"] != TABLES["tweets"] or kind == "ConditionCheck"


def test_liking_a_deleted_tweet_is_not_found_and_writes_nothing(world):
    tweet, _ = world.service.post("bob", KEY, "soon gone")
    world.service.delete("bob", tweet.tweet_id)
    before = world.snapshot()

    with pytest.raises(NotFound) as caught:
        world.service.like("alice", tweet.tweet_id)

    assert caught.value.field == "id"
    assert world.snapshot() == before
    world.count_likes()
    assert world.counter_item(tweet.tweet_id) is None
    assert world.graph_item(tweet_pk(tweet.tweet_id), like_sk("alice")) is None


@pytest.mark.parametrize("operation", ["like", "unlike"])
def test_liking_a_missing_or_deleted_tweet_is_not_found_and_writes_nothing(world, operation):
    tweet, _ = world.service.post("bob", KEY, "soon gone")
    world.service.like("alice", tweet.tweet_id)
    world.service.delete("bob", tweet.tweet_id)
    before = world.snapshot()

    for tweet_id in (tweet.tweet_id, expected_id(99)):
        with pytest.raises(NotFound) as caught:
            getattr(world.service, operation)("carol" if operation == "like" else "alice", tweet_id)
        assert caught.value.field == "id"

    assert world.snapshot() == before


@pytest.mark.parametrize("operation", ["like", "unlike"])
@pytest.mark.parametrize(
    "error",
    [
        cancelled("TransactionConflict", "None"),
        cancelled("None", "TransactionConflict"),
        cancelled("ConditionalCheckFailed", "TransactionConflict"),
        ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow"}}, "TransactWriteItems"),
    ],
)
def test_other_dynamodb_failures_on_like_propagate(dynamodb, operation, error):
    world = World(dynamodb, FailingTransactions(dynamodb, error))

    with pytest.raises(ClientError) as caught:
        getattr(world.service, operation)("alice", expected_id(1))

    assert caught.value is error


# -- retweet -----------------------------------------------------------------------------------------


def test_a_retweet_refers_to_its_original_and_records_a_marker(world):
    original, _ = world.service.post("bob", KEY, "worth sharing", media_ids=MEDIA[:0])

    retweet, created = world.service.retweet("alice", original.tweet_id)

    assert created is True
    assert retweet.retweet_of == original.tweet_id
    assert retweet.author_id == "alice"
    assert retweet.tweet_id == expected_id(2)
    stored = world.tweet_item(retweet.tweet_id)
    assert "text" not in stored and "media_ids" not in stored  # nothing of the original is copied
    assert retweet.original == original  # shown with the original as it is now
    assert retweet.to_json(URLS)["original"]["text"] == "worth sharing"
    marker = world.graph_item(user_pk("alice"), retweet_sk(original.tweet_id))
    assert marker["retweet_id"] == {"S": retweet.tweet_id}


def test_a_retweet_is_read_with_its_original_and_is_gone_once_the_original_is(world):
    original, _ = world.service.post("bob", KEY, "soon regretted")
    retweet, _ = world.service.retweet("alice", original.tweet_id)

    read = world.service.get(retweet.tweet_id)
    assert read.original is not None and read.original.text == "soon regretted"

    world.service.delete("bob", original.tweet_id)

    with pytest.raises(NotFound) as caught:
        world.service.get(retweet.tweet_id)
    assert "soon regretted" not in caught.value.message
    with pytest.raises(NotFound):
        world.service.retweet("carol", retweet.tweet_id)


def test_a_reply_keeps_its_text_and_shows_its_parent_deleted(world):
    parent, _ = world.service.post("bob", KEY, "a question")
    reply, _ = world.service.post("alice", "key-0002-abcdef", "an answer", reply_to=parent.tweet_id)
    assert world.service.get(reply.tweet_id).to_json(URLS)["reply_to_deleted"] is False

    world.service.delete("bob", parent.tweet_id)

    shown = world.service.get(reply.tweet_id).to_json(URLS)
    assert (shown["text"], shown["reply_to"], shown["reply_to_deleted"]) == (
        "an answer",
        parent.tweet_id,
        True,
    )


def test_retweeting_twice_makes_one_retweet(world):
    original, _ = world.service.post("bob", KEY, "worth sharing")
    first, _ = world.service.retweet("alice", original.tweet_id)
    before = world.snapshot()

    again, created = world.service.retweet("alice", original.tweet_id, "some-retry-key")

    assert (again, created) == (first, False)
    assert world.snapshot() == before
    assert len(before["tweets"]) == 2


def test_different_users_each_retweet_once(world):
    original, _ = world.service.post("bob", KEY, "worth sharing")

    alice, _ = world.service.retweet("alice", original.tweet_id)
    carol, _ = world.service.retweet("carol", original.tweet_id)

    assert alice.tweet_id != carol.tweet_id
    assert len(world.items("tweets")) == 3


def test_retweeting_a_retweet_retweets_its_original(world):
    original, _ = world.service.post("bob", KEY, "worth sharing")
    alices, _ = world.service.retweet("alice", original.tweet_id)

    carols, created = world.service.retweet("carol", alices.tweet_id)
    alices_again, alice_created = world.service.retweet("alice", alices.tweet_id)

    assert created is True
    assert carols.retweet_of == original.tweet_id
    assert carols.original == original
    assert world.graph_item(user_pk("carol"), retweet_sk(original.tweet_id)) is not None
    assert world.graph_item(user_pk("carol"), retweet_sk(alices.tweet_id)) is None
    assert (alices_again, alice_created) == (alices, False)


def test_retweeting_a_missing_or_deleted_tweet_is_not_found_and_writes_nothing(world):
    original, _ = world.service.post("bob", KEY, "soon gone")
    world.service.delete("bob", original.tweet_id)
    before = world.snapshot()

    for tweet_id in (original.tweet_id, expected_id(99)):
        with pytest.raises(NotFound) as caught:
            world.service.retweet("alice", tweet_id)
        assert caught.value.field == "id"

    assert world.snapshot() == before


def test_retweeting_a_retweet_of_a_deleted_tweet_is_not_found_and_writes_nothing(world):
    # The retweet itself is live, so only the transaction's check on the original catches this.
    original, _ = world.service.post("bob", KEY, "soon gone")
    alices, _ = world.service.retweet("alice", original.tweet_id)
    world.service.delete("bob", original.tweet_id)
    before = world.snapshot()

    with pytest.raises(NotFound):
        world.service.retweet("carol", alices.tweet_id)

    assert world.snapshot() == before


def test_retweeting_again_after_deleting_the_retweet_makes_a_new_one(world):
    original, _ = world.service.post("bob", KEY, "worth sharing")
    first, _ = world.service.retweet("alice", original.tweet_id)
    world.service.delete("alice", first.tweet_id)

    second, created = world.service.retweet("alice", original.tweet_id)

    assert created is True
    assert second.tweet_id != first.tweet_id
    marker = world.graph_item(user_pk("alice"), retweet_sk(original.tweet_id))
    assert marker["retweet_id"] == {"S": second.tweet_id}
    assert world.service.retweet("alice", original.tweet_id) == (second, False)


def test_other_dynamodb_failures_on_retweet_propagate(dynamodb):
    seed = World(dynamodb)
    original, _ = seed.service.post("bob", KEY, "worth sharing")
    error = cancelled("None", "None", "TransactionConflict")
    world = World(dynamodb, FailingTransactions(dynamodb, error))

    with pytest.raises(ClientError) as caught:
        world.service.retweet("alice", original.tweet_id)

    assert caught.value is error
