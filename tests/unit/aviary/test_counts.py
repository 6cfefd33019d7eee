"""Like and follower counts derived from the social graph's stream (aviary.counts).

On moto: each record kind, idempotence under redelivery, and (hypothesis) any sequence of likes and
unlikes delivered at least once, in order, with replays. On DynamoDB Local: two regions that both
like the same tweet before replication sees either, then replicate by last writer wins: each region's
count still equals the like items it holds, and the regions agree.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from aviary.clients import AWS_CONFIG
from aviary.counts import FOLLOWERS_COUNTER, LIKES_COUNTER, Counts, EdgeCounter, counter_of, value_of
from aviary.keys import follower_sk, follows_sk, like_sk, retweet_sk, tweet_pk, user_pk
from aviary.naming import table_name
from aviary.schema import COUNTS, SOCIAL_GRAPH
from tests.two_regions import REGIONS, TwoRegions
from tools.local_aws.event_sources import lambda_stream_record, records_after
from tools.local_aws.tables import create_tables

REGION = "us-east-1"
GRAPH, COUNTS_TABLE = table_name(SOCIAL_GRAPH), table_name(COUNTS)
TWEET = "01KD0000000000000000000001"


def record(event: str, pk: str, sk: str, sequence: int = 1) -> dict[str, Any]:
    keys = {"pk": {"S": pk}, "sk": {"S": sk}}
    images: dict[str, Any] = {"Keys": keys, "SequenceNumber": str(sequence)}
    if event != "REMOVE":
        images["NewImage"] = keys
    if event != "INSERT":
        images["OldImage"] = keys
    return {"eventName": event, "dynamodb": images}


def like(user: str, event: str = "INSERT", sequence: int = 1) -> dict[str, Any]:
    return record(event, tweet_pk(TWEET), like_sk(user), sequence)


@pytest.fixture
def dynamodb():
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION, config=AWS_CONFIG)
        create_tables(client, [SOCIAL_GRAPH, COUNTS])
        yield client


def likes(dynamodb: Any) -> int:
    item = dynamodb.get_item(TableName=COUNTS_TABLE, Key=Counts.likes_key(TWEET)).get("Item")
    return value_of(item)


def test_only_like_and_follower_edges_are_counted():
    assert counter_of(tweet_pk(TWEET), like_sk("alice")) == LIKES_COUNTER
    assert counter_of(user_pk("bob"), follower_sk("alice")) == FOLLOWERS_COUNTER
    assert counter_of(user_pk("alice"), follows_sk("bob")) is None  # the other side of a follow
    assert counter_of(user_pk("alice"), retweet_sk(TWEET)) is None
    assert counter_of(user_pk("alice"), like_sk("bob")) is None  # a like hangs off a tweet
    assert counter_of(tweet_pk(TWEET), follower_sk("bob")) is None


def test_a_like_arriving_counts_and_going_uncounts(dynamodb):
    counter = EdgeCounter(dynamodb, COUNTS_TABLE)

    assert counter.handle(like("alice")).delta == 1
    assert counter.handle(like("bob")).delta == 1
    assert likes(dynamodb) == 2
    assert counter.handle(like("alice", "REMOVE")).delta == -1
    assert likes(dynamodb) == 1


def test_a_redelivered_record_changes_nothing(dynamodb):
    counter = EdgeCounter(dynamodb, COUNTS_TABLE)
    counter.handle(like("alice"))
    counter.handle(like("alice", "REMOVE"))

    assert counter.handle(like("alice", "REMOVE")).delta == 0  # uncounted once already
    assert likes(dynamodb) == 0
    counter.handle(like("bob"))
    assert counter.handle(like("bob")).delta == 0  # counted once already
    assert likes(dynamodb) == 1


def test_an_edge_rewritten_in_place_is_still_one_edge(dynamodb):
    # A replica of the same like landing over it (last writer wins) shows as a MODIFY.
    counter = EdgeCounter(dynamodb, COUNTS_TABLE)
    counter.handle(like("alice"))

    assert counter.handle(like("alice", "MODIFY")).delta == 0
    assert likes(dynamodb) == 1


def test_follower_edges_count_the_followee(dynamodb):
    counter = EdgeCounter(dynamodb, COUNTS_TABLE)
    for follower in ("alice", "carol"):
        counter.handle(record("INSERT", user_pk("bob"), follower_sk(follower)))
        counter.handle(record("INSERT", user_pk(follower), follows_sk("bob")))  # not counted

    assert Counts(dynamodb, COUNTS_TABLE).followers("bob") == 2
    assert Counts(dynamodb, COUNTS_TABLE).followers("alice") == 0


def test_items_nobody_counts_and_records_without_keys_are_ignored(dynamodb):
    counter = EdgeCounter(dynamodb, COUNTS_TABLE)

    assert counter.handle(record("INSERT", user_pk("alice"), retweet_sk(TWEET))).delta == 0
    assert counter.handle({"eventName": "INSERT", "dynamodb": {}}).delta == 0
    assert dynamodb.scan(TableName=COUNTS_TABLE)["Count"] == 0


def test_a_failure_other_than_already_counted_propagates(dynamodb):
    class Throttled:
        def transact_write_items(self, **_: Any) -> None:
            raise ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "slow"}}, "TransactWriteItems"
            )

    with pytest.raises(ClientError):
        EdgeCounter(Throttled(), COUNTS_TABLE).handle(like("alice"))


def test_a_count_never_reads_below_zero_or_from_garbage():
    assert value_of(None) == 0
    assert value_of({"n": {"N": "-2"}}) == 0
    assert value_of({"n": {"N": "x"}}) == 0
    assert value_of({"n": {"N": "7"}}) == 7


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    operations=st.lists(st.tuples(st.booleans(), st.sampled_from(["alice", "bob", "carol"])), max_size=15),
    replays=st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30)), max_size=4),
)
def test_any_likes_delivered_at_least_once_in_order_count_exactly_the_likes_held(operations, replays):
    """Lambda delivers a shard in order, but a retry restarts from an earlier record: model that as
    the stream with some stretches delivered again, then check the count against the items."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION, config=AWS_CONFIG)
        create_tables(client, [SOCIAL_GRAPH, COUNTS])
        key = {"pk": {"S": tweet_pk(TWEET)}}
        for add, user in operations:
            item = {**key, "sk": {"S": like_sk(user)}}
            if add:
                client.put_item(TableName=GRAPH, Item=item)
            else:
                client.delete_item(TableName=GRAPH, Key=item)
        streams = boto3.client("dynamodbstreams", region_name=REGION, config=AWS_CONFIG)
        arn = client.describe_table(TableName=GRAPH)["Table"]["LatestStreamArn"]
        stream = [
            lambda_stream_record(r, stream_arn=arn, region=REGION)
            for r in records_after(streams, arn, None, limit=100)
        ]
        delivered = list(stream)
        for at, back in replays:
            if stream:
                end = min(at, len(stream))
                delivered += stream[max(0, end - back) :]  # a retry from an earlier record onwards
        counter = EdgeCounter(client, COUNTS_TABLE)
        for each in delivered:
            counter.handle(each)

        held = client.query(
            TableName=GRAPH, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": key["pk"]}
        )["Count"]
        assert likes(client) == held


# -- two regions on DynamoDB Local -----------------------------------------------------------------------


def test_likes_of_one_tweet_in_two_regions_replicated_by_last_writer_wins_count_the_same_everywhere(
    dynamodb_local, tmp_path
):
    regions = TwoRegions(dynamodb_local, tmp_path, derived=[COUNTS])
    regions.consume(SOCIAL_GRAPH, lambda region: EdgeCounter(regions.dynamodb[region], COUNTS_TABLE).handle)
    east, west = REGIONS

    def change(region: str, user: str, add: bool = True) -> None:
        key = {"pk": {"S": tweet_pk(TWEET)}, "sk": {"S": like_sk(user)}}
        if add:
            regions.dynamodb[region].put_item(TableName=GRAPH, Item=key)
        else:
            regions.dynamodb[region].delete_item(TableName=GRAPH, Key=key)
        regions.observe()

    # The same like lands in both regions before either has seen the other's (a client retried a
    # like in the other region after its first answer was lost), beside likes of one region only.
    change(east, "alice")
    change(west, "alice")
    change(east, "bob")
    change(west, "carol")
    change(west, "carol", add=False)
    change(east, "dave")
    assert (len(regions.scan(east, SOCIAL_GRAPH)), len(regions.scan(west, SOCIAL_GRAPH))) == (3, 1)

    regions.settle()

    for region in REGIONS:
        assert len(regions.scan(region, SOCIAL_GRAPH)) == 3, region  # alice (once), bob, dave
        counter = regions.dynamodb[region].get_item(TableName=COUNTS_TABLE, Key=Counts.likes_key(TWEET))
        assert value_of(counter.get("Item")) == 3, region
