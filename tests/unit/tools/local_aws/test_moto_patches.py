"""The patches of moto: the quicker transactions and queries answer exactly as moto does."""

from __future__ import annotations

import contextlib
import random
from typing import Any

import boto3
import pytest
from moto import mock_aws

from aviary.clients import AWS_CONFIG
from aviary.schema import ALL_TABLES, TIMELINES
from aviary.social_graph import SocialGraph
from aviary.tweet_service import TweetService
from tools.local_aws.moto_patches import quicker_moto
from tools.local_aws.tables import create_tables

SEED = 7


class _NoMedia:
    def assert_ready(self, owner, media_ids):
        return {}


@pytest.mark.parametrize("quicker", [False, True], ids=["moto", "quicker"])
def test_a_cancelled_transaction_leaves_no_trace(quicker):
    with mock_aws(), quicker_moto() if quicker else contextlib.nullcontext():
        client = boto3.client("dynamodb", region_name="us-east-1", config=AWS_CONFIG)
        tables = create_tables(client, ALL_TABLES)
        graph = SocialGraph(client, tables["social-graph"])
        assert graph.follow("ann", "bob") is True
        # Cancelled: the edge exists. Its other edge's put ran in place and must be rolled back,
        # leaving no stream record behind.
        assert graph.follow("ann", "bob") is False
        assert client.scan(TableName=tables["social-graph"])["Count"] == 2
        assert [r["eventName"] for r in _stream(client, tables["social-graph"])] == ["INSERT", "INSERT"]

        service = TweetService(
            client,
            tweets_table=tables["tweets"],
            social_graph_table=tables["social-graph"],
            idempotency_table=tables["idempotency"],
            counts_table=tables["counts"],
            media_checker=_NoMedia(),
        )
        first, created = service.post("ann", "key-00000001", "hello")
        again, replayed_created = service.post("ann", "key-00000001", "hello")  # its tweet put is undone
        assert created and not replayed_created and again == first
        assert client.scan(TableName=tables["tweets"])["Count"] == 1
        assert [r["eventName"] for r in _stream(client, tables["tweets"])] == ["INSERT"]


def _stream(client: Any, table: str) -> list[dict[str, Any]]:
    streams = boto3.client("dynamodbstreams", region_name="us-east-1", config=AWS_CONFIG)
    arn = client.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    return streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]


def _queries(client: Any, table: str) -> list[Any]:
    answers = []
    for user in ("u0", "u1", "u9"):
        for forward in (True, False):
            request = {
                "TableName": table,
                "KeyConditionExpression": "user_id = :u AND entry_key BETWEEN :a AND :b",
                "ExpressionAttributeValues": {":u": {"S": user}, ":a": {"S": "k03"}, ":b": {"S": "k17"}},
                "ScanIndexForward": forward,
                "Limit": 4,
            }
            pages = []
            while True:
                page = client.query(**request)
                pages.append((page["Items"], page.get("LastEvaluatedKey")))
                if "LastEvaluatedKey" not in page:
                    break
                request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
            answers.append(pages)
    answers.append(
        client.query(
            TableName=table,
            KeyConditionExpression="user_id = :u",
            ExpressionAttributeValues={":u": {"S": "u2"}},
            Select="COUNT",
        )["Count"]
    )
    return answers


def test_a_query_reads_the_same_through_the_quicker_moto():
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1", config=AWS_CONFIG)
        table = create_tables(client, [TIMELINES])["timelines"]
        rng = random.Random(SEED)
        keys = [(f"u{rng.randrange(4)}", f"k{n:02d}") for n in range(80)]
        for user, key in keys:
            client.put_item(TableName=table, Item={"user_id": {"S": user}, "entry_key": {"S": key}})
        plain = _queries(client, table)
        with quicker_moto():
            quick = _queries(client, table)
        assert quick == plain
        assert any(len(pages) > 1 for pages in plain[:-1])  # pagination was exercised
