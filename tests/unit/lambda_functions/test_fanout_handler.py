"""The fan-out Lambda handler: settings at import, partial batch responses, and a real moto stream."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from datetime import datetime
from types import ModuleType
from typing import Any

import boto3
import pytest

from aviary import clients
from aviary.fanout import FanoutService, TimelineTrimmer, TimelineWriter
from aviary.followers import FollowerDirectory
from aviary.settings import SettingsError
from aviary.tweets import Tweet
from tests.timeline_writers import (
    REGION,
    all_entries,
    expected_entries,
    fill_timeline,
    first_tweet,
    ids,
    is_sampled,
    make_tweet,
    seed_followers,
    store_tweets,
    stream_record,
    throttled,
    timeline_of,
    tombstone,
)
from tests.unit.lambda_functions.lambda_context import lambda_context
from tools.local_aws.counting_client import CountingClient

pytestmark = pytest.mark.usefixtures("aws_environment")

MODULE = "lambda_functions.fanout.handler"
CONTEXT = lambda_context("aviary-fanout")


def load_handler(
    monkeypatch: pytest.MonkeyPatch, client: Any, tables: dict[str, str], **env: str
) -> ModuleType:
    """The handler module imported afresh, as a cold start would, with these settings and client."""
    settings = {
        "AVIARY_TIMELINES_TABLE": tables["timelines"],
        "AVIARY_SOCIAL_GRAPH_TABLE": tables["social-graph"],
        "AVIARY_TWEETS_TABLE": tables["tweets"],
        "AVIARY_COUNTS_TABLE": tables["counts"],
        "AVIARY_CELEBRITY_THRESHOLD": "5",
        **env,
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(clients, "client", lambda _service, **_kwargs: client)
    if MODULE in sys.modules:
        return importlib.reload(sys.modules[MODULE])
    return importlib.import_module(MODULE)


def event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def entries_of(client: Any, tables: dict[str, str]) -> list[dict[str, Any]]:
    return all_entries(client, tables["timelines"])


def test_settings_are_read_once_at_import(dynamo, monkeypatch):
    client, tables = dynamo
    module = load_handler(monkeypatch, client, tables, AVIARY_TIMELINE_RETENTION_DAYS="7")
    settings = [module.SETTINGS.timelines_table, module.SETTINGS.social_graph_table]
    assert settings == [tables["timelines"], tables["social-graph"]]
    assert (module.SETTINGS.celebrity_threshold, module.SETTINGS.retention_days) == (5, 7)
    # Changing the environment later changes nothing: the process keeps what it started with.
    monkeypatch.setenv("AVIARY_CELEBRITY_THRESHOLD", "99")
    assert module.SETTINGS.celebrity_threshold == 5


def test_one_client_is_built_on_the_first_batch_and_kept(dynamo, monkeypatch):
    client, tables = dynamo
    module = load_handler(monkeypatch, client, tables)
    built: list[str] = []

    def counted(service: str, **_kwargs: Any) -> Any:
        built.append(service)
        return client

    monkeypatch.setattr(module, "client", counted)
    assert built == []  # importing builds no client: the import stays lean
    for sequence in ("1", "2"):
        batch = event(stream_record("INSERT", new=make_tweet(int(sequence)), sequence=sequence))
        assert module.handler(batch, CONTEXT) == {"batchItemFailures": []}
    assert built == ["dynamodb"]


def test_retention_defaults_to_30_days(dynamo, monkeypatch):
    client, tables = dynamo
    monkeypatch.delenv("AVIARY_TIMELINE_RETENTION_DAYS", raising=False)
    assert load_handler(monkeypatch, client, tables).SETTINGS.retention_days == 30


@pytest.mark.parametrize("name", ["AVIARY_SOCIAL_GRAPH_TABLE", "AVIARY_TWEETS_TABLE"])
def test_a_source_table_name_has_no_fallback(dynamo, monkeypatch, name):
    # The stack always sets them (tests/unit/stacks/test_runtime_settings.py); an empty one is an error.
    client, tables = dynamo
    with pytest.raises(SettingsError, match=name):
        load_handler(monkeypatch, client, tables, **{name: ""})


def test_the_timeline_cap_is_read_once_at_import_and_defaults_to_800(dynamo, monkeypatch):
    client, tables = dynamo
    monkeypatch.delenv("AVIARY_TIMELINE_MAX_ENTRIES", raising=False)
    assert load_handler(monkeypatch, client, tables).SETTINGS.max_entries == 800
    module = load_handler(monkeypatch, client, tables, AVIARY_TIMELINE_MAX_ENTRIES="120")
    monkeypatch.setenv("AVIARY_TIMELINE_MAX_ENTRIES", "5")
    assert module.SETTINGS.max_entries == 120
    service = module.build_service(client)
    assert isinstance(service.trimmer, TimelineTrimmer)
    assert (service.trimmer.max_entries, service.trimmer.timelines_table) == (120, tables["timelines"])
    assert service.trimmer.writer is service.writer  # deletes get the writer's batching and retries


@pytest.mark.parametrize("value", ["0", "-3", "lots"])
def test_a_cap_that_is_not_a_positive_integer_fails_the_cold_start(dynamo, monkeypatch, value):
    client, tables = dynamo
    with pytest.raises(ValueError):
        load_handler(monkeypatch, client, tables, AVIARY_TIMELINE_MAX_ENTRIES=value)


def test_a_batch_trims_sampled_timelines_to_the_cap(dynamo, monkeypatch, capsys):
    client, tables = dynamo
    seed_followers(client, tables, "alice", ["bob"])
    older = fill_timeline(client, tables, "bob", 12)
    tweet = first_tweet(1000, "alice", lambda t: is_sampled("bob", t) and not is_sampled("alice", t))
    module = load_handler(monkeypatch, client, tables, AVIARY_TIMELINE_MAX_ENTRIES="10")
    store_tweets(client, tables, tweet)
    batch = event(stream_record("INSERT", new=tweet, sequence="1"))

    assert module.handler(batch, CONTEXT) == {"batchItemFailures": []}
    assert timeline_of(client, tables, "bob") == ids([*older, tweet])[3:]
    # Redelivered, the same entry is rewritten and the same trim finds nothing left to delete.
    assert module.handler(batch, CONTEXT) == {"batchItemFailures": []}
    assert timeline_of(client, tables, "bob") == ids([*older, tweet])[3:]
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [(m["TimelineEntriesWritten"], m["TimelineEntriesTrimmed"]) for m in emf] == [
        ([2.0], [3.0]),
        ([2.0], [0.0]),
    ]


def test_a_missing_timelines_table_fails_the_cold_start(dynamo, monkeypatch):
    client, tables = dynamo
    load_handler(monkeypatch, client, tables)
    monkeypatch.delenv("AVIARY_TIMELINES_TABLE")
    with pytest.raises(SettingsError, match="AVIARY_TIMELINES_TABLE"):
        importlib.reload(sys.modules[MODULE])


def test_a_batch_fans_out_and_reports_no_failures(dynamo, monkeypatch, capsys):
    client, tables = dynamo
    seed_followers(client, tables, "alice", ["bob", "carol"])
    module = load_handler(monkeypatch, client, tables)
    first, second = make_tweet(1), make_tweet(2)
    liked = Tweet(**{**first.__dict__, "like_count": 3})
    store_tweets(client, tables, liked, second)
    batch = event(
        stream_record("INSERT", new=first, sequence="1"),
        stream_record("MODIFY", new=liked, old=first, sequence="2"),
        stream_record("INSERT", new=second, sequence="3"),
    )

    assert module.handler(batch, CONTEXT) == {"batchItemFailures": []}

    assert entries_of(client, tables) == expected_entries(
        {u: [first, second] for u in ("alice", "bob", "carol")}
    )
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert len(emf) == 1
    assert emf[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Aviary"
    assert emf[0]["service"] == "fanout"
    assert (emf[0]["TimelineEntriesWritten"], emf[0]["FanoutRecordsFailed"]) == ([6.0], [0.0])


def test_a_redelivered_batch_leaves_the_same_items(dynamo, monkeypatch):
    client, tables = dynamo
    seed_followers(client, tables, "alice", [f"f{i:02d}" for i in range(30)])
    module = load_handler(monkeypatch, client, tables, AVIARY_CELEBRITY_THRESHOLD="1000")
    kept, deleted = make_tweet(1), make_tweet(2)
    store_tweets(client, tables, kept, tombstone(deleted))
    batch = event(
        stream_record("INSERT", new=kept, sequence="1"),
        stream_record("INSERT", new=deleted, sequence="2"),
        stream_record("MODIFY", new=tombstone(deleted), old=deleted, sequence="3"),
    )
    assert module.handler(batch, CONTEXT) == {"batchItemFailures": []}
    first = entries_of(client, tables)
    assert module.handler(batch, CONTEXT) == {"batchItemFailures": []}
    assert entries_of(client, tables) == first
    assert len(first) == 31


def _throttling_for(tweet: Tweet):
    """A fault that throttles every BatchWriteItem carrying `tweet` and lets everything else through."""
    always = throttled(times=10**6)

    def fault(name: str, kwargs: dict[str, Any]) -> Any:
        if name == "batch_write_item" and tweet.tweet_id in json.dumps(kwargs["RequestItems"]):
            return always(name, kwargs)
        return None

    return fault


def test_a_record_that_stays_throttled_is_the_only_failure_reported(dynamo, monkeypatch):
    client, tables = dynamo
    seed_followers(client, tables, "alice", ["bob"])
    module = load_handler(monkeypatch, client, tables)
    ok_before, stuck, ok_after = make_tweet(1), make_tweet(2), make_tweet(3)
    counting = CountingClient(client, fault=_throttling_for(stuck))
    sleeps: list[float] = []
    service = FanoutService(
        FollowerDirectory(counting, tables["social-graph"], tables["counts"]),
        TimelineWriter(counting, tables["timelines"], sleep=sleeps.append, max_attempts=3),
        5,
    )
    handler = module.build_handler(service)
    batch = event(
        stream_record("INSERT", new=ok_before, sequence="111"),
        stream_record("INSERT", new=stuck, sequence="222"),
        stream_record("INSERT", new=ok_after, sequence="333"),
    )

    assert handler(batch, CONTEXT) == {"batchItemFailures": [{"itemIdentifier": "222"}]}

    assert entries_of(client, tables) == expected_entries(
        {u: [ok_before, ok_after] for u in ("alice", "bob")}
    )
    # One call at the stuck record's chunk: botocore retried the throttle already, the writer adds none.
    assert counting.calls.count("batch_write_item") == 3 and sleeps == []

    # The event source retries from the failed record onwards; once DynamoDB recovers, all is there once.
    counting.fault = None
    assert handler(event(*batch["Records"][1:]), CONTEXT) == {"batchItemFailures": []}
    assert entries_of(client, tables) == expected_entries(
        {u: [ok_before, stuck, ok_after] for u in ("alice", "bob")}
    )


def test_a_batch_where_every_record_fails_is_reported_not_raised(dynamo, monkeypatch):
    client, tables = dynamo
    module = load_handler(monkeypatch, client, tables)

    class Broken:
        def handle(self, _record: dict[str, Any]) -> Any:
            raise RuntimeError("DynamoDB is down")

    handler = module.build_handler(Broken())
    batch = event(stream_record("INSERT", new=make_tweet(1), sequence="7"))
    assert handler(batch, CONTEXT) == {"batchItemFailures": [{"itemIdentifier": "7"}]}


def _lambda_shape(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A GetRecords record as the event source mapping hands it to Lambda (JSON, with the stream ARN)."""
    images = dict(record["dynamodb"])
    created = images.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        images["ApproximateCreationDateTime"] = int(created.timestamp())
    return {
        **{k: v for k, v in record.items() if k != "dynamodb"},
        "dynamodb": images,
        "eventSourceARN": stream_arn,
    }


def test_records_read_from_the_tweets_stream_fan_out(dynamo, monkeypatch):
    client, tables = dynamo
    seed_followers(client, tables, "alice", ["bob"])
    module = load_handler(monkeypatch, client, tables)
    streams = boto3.client("dynamodbstreams", region_name=REGION, config=clients.AWS_CONFIG)
    stream_arn = client.describe_table(TableName=tables["tweets"])["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(
        StreamArn=stream_arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]

    def next_batch() -> dict[str, Any]:
        nonlocal iterator
        response = streams.get_records(ShardIterator=iterator)
        iterator = response["NextShardIterator"]
        return event(*(_lambda_shape(record, stream_arn) for record in response["Records"]))

    tweet = make_tweet(1, media_ids=("m1",))
    client.put_item(TableName=tables["tweets"], Item=tweet.to_item())
    batch = next_batch()
    assert [r["eventName"] for r in batch["Records"]] == ["INSERT"]
    assert module.handler(batch, CONTEXT) == {"batchItemFailures": []}
    assert entries_of(client, tables) == expected_entries({"alice": [tweet], "bob": [tweet]})

    # A like, then the delete as TweetService makes it: a tombstone without text or media.
    client.update_item(
        TableName=tables["tweets"],
        Key={"tweet_id": {"S": tweet.tweet_id}},
        UpdateExpression="ADD like_count :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )
    client.update_item(
        TableName=tables["tweets"],
        Key={"tweet_id": {"S": tweet.tweet_id}},
        UpdateExpression="SET deleted = :true REMOVE #text, media_ids",
        ExpressionAttributeNames={"#text": "text"},
        ExpressionAttributeValues={":true": {"BOOL": True}},
    )
    batch = next_batch()
    assert [r["eventName"] for r in batch["Records"]] == ["MODIFY", "MODIFY"]
    assert module.handler(batch, CONTEXT) == {"batchItemFailures": []}
    assert entries_of(client, tables) == []


def test_the_handler_imports_no_unused_powertools_features(tmp_path):
    probe = (
        "import sys, lambda_functions.fanout.handler\n"
        "heavy = ['pydantic', 'aws_xray_sdk', 'aws_lambda_powertools.event_handler',\n"
        "         'aws_lambda_powertools.utilities.parser', 'aws_lambda_powertools.utilities.idempotency']\n"
        "print([name for name in heavy if name in sys.modules])\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AVIARY_TIMELINES_TABLE": "timelines",
        "AVIARY_SOCIAL_GRAPH_TABLE": "social-graph",
        "AVIARY_TWEETS_TABLE": "tweets",
        "AVIARY_COUNTS_TABLE": "counts",
        "AVIARY_CELEBRITY_THRESHOLD": "10",
    }
    root = importlib.import_module("aviary").__path__[0].rsplit("/", 1)[0]
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "[]"
