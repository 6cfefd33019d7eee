"""A post accepted twice for one request, once in each region, ends as one tweet (aviary.duplicates).

On moto: which idempotency-stream records make a tombstone of which tweet. On DynamoDB Local: the
whole story, with the real services, replication and consumers: a post lands in one region whose
answer is lost, its retry is accepted in the other region before the first has replicated, and once
the regions settle exactly one tweet is live everywhere (the one the client was told about) and no
timeline shows the other.
"""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from aviary.clients import AWS_CONFIG
from aviary.duplicates import DuplicatePosts
from aviary.fanout import FanoutService, TimelineWriter
from aviary.followers import FollowerDirectory
from aviary.ids import new_ulid
from aviary.naming import table_name
from aviary.schema import COUNTS, IDEMPOTENCY, SOCIAL_GRAPH, TIMELINES, TWEETS
from aviary.social_graph import SocialGraph
from aviary.tweet_service import TweetService
from aviary.tweets import Tweet
from tests.two_regions import REGIONS, TwoRegions
from tools.local_aws.tables import create_tables

TWEETS_TABLE = table_name(TWEETS)
NOW_MS = 1_795_000_000_000
TTL_SECONDS = 86_400


def tweet_id(ms: int, n: int) -> str:
    return new_ulid(ms, n.to_bytes(10, "big"))


def record_image(tweet: str, expiration_s: int) -> dict[str, Any]:
    return {
        "id": {"S": "post-tweet#alice#key-1"},
        "tweet_id": {"S": tweet},
        "expiration": {"N": str(expiration_s)},
    }


def modify(old: str, new: str, *, old_expiration_s: int | None = None) -> dict[str, Any]:
    expiration = NOW_MS // 1000 + TTL_SECONDS if old_expiration_s is None else old_expiration_s
    return {
        "eventName": "MODIFY",
        "dynamodb": {
            "OldImage": record_image(old, expiration),
            "NewImage": record_image(new, expiration + 5),
        },
    }


@pytest.fixture
def tweets():
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1", config=AWS_CONFIG)
        create_tables(client, [TWEETS])
        yield client


def store(client: Any, tweet: str, text: str = "hello") -> None:
    client.put_item(
        TableName=TWEETS_TABLE,
        Item=Tweet(tweet, "alice", Tweet.created_at_of(tweet), text, media_ids=("m1",)).to_item(),
    )


def item(client: Any, tweet: str) -> dict[str, Any] | None:
    return client.get_item(TableName=TWEETS_TABLE, Key={"tweet_id": {"S": tweet}}).get("Item")


def test_a_record_replaced_by_one_naming_another_tweet_makes_the_first_a_tombstone(tweets):
    first, retry = tweet_id(NOW_MS, 1), tweet_id(NOW_MS + 3_000, 2)
    store(tweets, first)
    store(tweets, retry)

    resolution = DuplicatePosts(tweets, TWEETS_TABLE).handle(modify(first, retry))

    assert (resolution.removed, resolution.kept) == (first, retry)
    removed = item(tweets, first)
    assert removed["deleted"] == {"BOOL": True} and removed["duplicate_of"] == {"S": retry}
    assert "text" not in removed and "media_ids" not in removed
    assert item(tweets, retry)["deleted"] == {"BOOL": False}


def test_resolving_again_or_before_the_tweet_is_here_changes_nothing(tweets):
    first, retry = tweet_id(NOW_MS, 1), tweet_id(NOW_MS + 3_000, 2)
    duplicates = DuplicatePosts(tweets, TWEETS_TABLE)

    assert duplicates.handle(modify(first, retry)).removed is None  # not in this region: its home resolves it
    assert item(tweets, first) is None
    store(tweets, first)
    duplicates.handle(modify(first, retry))
    tombstone = item(tweets, first)

    assert duplicates.handle(modify(first, retry)).removed is None
    assert item(tweets, first) == tombstone


@pytest.mark.parametrize(
    "record",
    [
        pytest.param({"eventName": "INSERT", "dynamodb": {"NewImage": record_image("x", 1)}}, id="insert"),
        pytest.param({"eventName": "REMOVE", "dynamodb": {"OldImage": record_image("x", 1)}}, id="expired"),
        pytest.param(modify(tweet_id(NOW_MS, 1), tweet_id(NOW_MS, 1)), id="same-tweet"),
        pytest.param({"eventName": "MODIFY", "dynamodb": {}}, id="no-images"),
    ],
)
def test_other_records_change_nothing(tweets, record):
    store(tweets, tweet_id(NOW_MS, 1))
    assert DuplicatePosts(tweets, TWEETS_TABLE).handle(record).removed is None
    assert item(tweets, tweet_id(NOW_MS, 1))["deleted"] == {"BOOL": False}


def test_a_key_reused_after_its_record_expired_is_a_new_post_not_a_duplicate(tweets):
    old, new = tweet_id(NOW_MS, 1), tweet_id(NOW_MS + (TTL_SECONDS + 60) * 1000, 2)
    store(tweets, old)
    store(tweets, new)

    record = modify(old, new, old_expiration_s=NOW_MS // 1000 + TTL_SECONDS)

    assert DuplicatePosts(tweets, TWEETS_TABLE).handle(record).removed is None
    assert item(tweets, old)["deleted"] == {"BOOL": False}


def test_a_failure_other_than_already_resolved_propagates():
    class Throttled:
        def update_item(self, **_: Any) -> None:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow"}}, "UpdateItem")

    with pytest.raises(ClientError):
        DuplicatePosts(Throttled(), TWEETS_TABLE).handle(modify(tweet_id(NOW_MS, 1), tweet_id(NOW_MS + 1, 2)))


# -- the whole story, on DynamoDB Local -------------------------------------------------------------------


class _NoMedia:
    def assert_ready(self, owner: str, media_ids: tuple[str, ...]) -> dict[str, str]:
        return {}


def test_a_post_accepted_in_both_regions_ends_as_the_one_the_client_was_told_about(dynamodb_local, tmp_path):
    # DynamoDB Local deletes items whose TTL has passed (as DynamoDB does, only sooner): the records
    # must be alive now, so the posts are made now.
    now_ms = int(time.time() * 1000)
    regions = TwoRegions(dynamodb_local, tmp_path, derived=[TIMELINES, COUNTS])
    east, west = REGIONS
    names = {
        schema.role: table_name(schema) for schema in (TWEETS, SOCIAL_GRAPH, IDEMPOTENCY, TIMELINES, COUNTS)
    }

    def service(region: str, now_ms: int, n: int) -> TweetService:
        return TweetService(
            regions.dynamodb[region],
            tweets_table=names["tweets"],
            social_graph_table=names["social-graph"],
            idempotency_table=names["idempotency"],
            counts_table=names["counts"],
            media_checker=_NoMedia(),
            clock_ms=lambda: now_ms,
            random_bytes=lambda size: n.to_bytes(size, "big"),
        )

    def fanout(region: str) -> Any:
        client = regions.dynamodb[region]
        return FanoutService(
            FollowerDirectory(client, names["social-graph"], names["counts"]),
            TimelineWriter(client, names["timelines"], sleep=lambda _s: None),
            celebrity_follower_threshold=1000,
        ).handle

    regions.consume(TWEETS, fanout)
    regions.consume(
        IDEMPOTENCY, lambda region: DuplicatePosts(regions.dynamodb[region], names["tweets"]).handle
    )
    SocialGraph(regions.dynamodb[east], names["social-graph"]).follow("bob", "alice")
    regions.observe()
    regions.settle()

    # The post lands in east, whose answer never reaches the client: east fails at that moment.
    lost, _ = service(east, now_ms, 1).post("alice", "key-00000001", "hello")
    regions.observe()
    regions.down.add(east)
    # Seconds later the client retries the same request, and west accepts it as new.
    told, created = service(west, now_ms + 3_000, 2).post("alice", "key-00000001", "hello")
    regions.observe()
    assert created and told.tweet_id != lost.tweet_id
    regions.settle()  # west alone: it shows the tweet it accepted

    regions.down.clear()
    regions.settle()

    for region in REGIONS:
        live = [i["tweet_id"]["S"] for i in regions.scan(region, TWEETS) if not i["deleted"]["BOOL"]]
        assert live == [told.tweet_id], region
        [record] = regions.scan(region, IDEMPOTENCY)
        assert json.loads(record["response"]["S"])["id"] == told.tweet_id, region
        timelines = {(i["user_id"]["S"], i["tweet_id"]["S"]) for i in regions.scan(region, TIMELINES)}
        assert timelines == {("alice", told.tweet_id), ("bob", told.tweet_id)}, region
    # A later retry of the same request, anywhere, is answered with the tweet the client was told about.
    for region in REGIONS:
        again, created = service(region, now_ms + 9_000, 3).post("alice", "key-00000001", "hello")
        assert (again.tweet_id, created) == (told.tweet_id, False)
