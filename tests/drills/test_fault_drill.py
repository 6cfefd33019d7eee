"""The fault drill: faults really reach the handlers, the invariants hold, and the checks catch breakage."""

from __future__ import annotations

import ast
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from moto import mock_aws

from aviary.clients import AWS_CONFIG
from aviary.keys import follower_sk, user_pk
from aviary.schema import ALL_TABLES
from aviary.social_graph import SocialGraph
from tools.drills import fault_drill
from tools.drills.fault_drill import run
from tools.drills.fault_injection import THROTTLING_CODES, FaultInjector
from tools.local_aws.counting_client import CountingClient
from tools.local_aws.tables import create_tables

PROJECT = Path(__file__).resolve().parents[2]
SEED = 7
HARSH_TWEETS = 400
QUIET = {"throttle_rate": 0.0, "timeout_rate": 0.0, "duplicate_rate": 0.0, "reorder_batches": False}


@pytest.fixture(scope="module")
def harsh():
    """Every fault reaches the code (no SDK retries): 503s, partial batches, the failure destination."""
    return run(HARSH_TWEETS, seed=SEED, sdk_attempts=1)


# -- under faults --------------------------------------------------------------------------------------


def test_faults_reach_the_api_the_stream_and_the_fanout(harsh):
    d = harsh.details
    assert d["posts attempted"] == HARSH_TWEETS
    for name in (
        "throttles injected",
        "timeouts injected",
        "timeouts after apply",
        "503s retried",
        "replays after lost answer",
        "faults reaching the fan-out",
        "duplicates delivered",
        "batches reordered",
        "retries",
        "failure-destination records",
        "deletes before fan-out",
        "deletes after fan-out",
    ):
        assert d[name] > 0, name


def test_every_timeline_holds_each_accepted_tweet_exactly_once(harsh):
    d = harsh.details
    assert d["timeline entries missing"] == 0
    assert d["timeline entries doubled"] == 0
    assert d["misplaced entries"] == 0
    assert d["timeline entries"] > HARSH_TWEETS  # authors and their followers
    assert harsh.survived > HARSH_TWEETS


def test_every_post_is_stored_once_and_every_replay_returns_the_original(harsh):
    d = harsh.details
    assert d["accepted"] == HARSH_TWEETS
    assert d["requests given up"] == 0 and d["unexpected statuses"] == 0
    assert d["replays"] > 0 and d["replays matching"] == d["replays"]
    assert d["replays differing"] == 0
    assert d["accepted tweets missing"] == d["tweets stored twice"] == d["orphan tweets"] == 0
    assert d["follower counts drifted"] == 0


def test_the_failure_destination_is_empty_after_one_redrive(harsh):
    d = harsh.details
    assert d["redriven"] > 0
    assert d["left in failure destination"] == 0
    assert "failure destination" not in d["invariants"]


def test_deleted_tweets_are_gone_and_every_invariant_holds(harsh):
    assert harsh.details["deleted tweets shown"] == 0
    assert harsh.details["invariants"] == "all held"
    assert harsh.lost == 0 and harsh.duplicated == 0


def test_with_sdk_retries_faults_mostly_stay_in_the_client_and_nothing_is_orphaned():
    result = run(300, seed=SEED)
    d = result.details
    injected = d["throttles injected"] + d["timeouts injected"]
    assert injected > 100
    assert d["faults reaching the API"] + d["faults reaching the fan-out"] < injected / 10
    # A transaction retried after its first attempt landed is answered as its token says, not refused.
    assert d["timeouts after apply"] > 0
    assert d["unexpected statuses"] == d["orphan tweets"] == d["tweets stored twice"] == 0
    assert d["timeline entries missing"] == d["timeline entries doubled"] == 0


# -- the checks catch a broken store ---------------------------------------------------------------------


def _quiet_run(tamper=None):
    return run(120, seed=SEED, tamper=tamper, **QUIET)


def _first_entry(client: Any, tables: dict[str, str]) -> dict[str, Any]:
    return client.scan(TableName=tables["timelines"], Limit=1)["Items"][0]


def test_a_quiet_run_passes_every_check():
    result = _quiet_run()
    assert result.details["invariants"] == "all held"
    assert result.passed and result.survived > 120
    assert result.details["throttles injected"] == result.details["timeouts injected"] == 0


def test_a_lost_timeline_entry_is_counted_as_lost():
    def drop_one(client, tables):
        entry = _first_entry(client, tables)
        client.delete_item(TableName=tables["timelines"], Key={k: entry[k] for k in ("user_id", "entry_key")})

    result = _quiet_run(drop_one)
    assert result.lost == 1 and result.duplicated == 0
    assert result.details["timeline entries missing"] == 1
    assert "timeline entries missing" in result.details["invariants"]


def test_a_second_copy_of_an_entry_is_counted_as_duplicated():
    def copy_one(client, tables):
        entry = _first_entry(client, tables)
        # Same tweet, another key: what a fan-out with non-deterministic keys would leave behind.
        twin = {**entry, "entry_key": {"S": "1999-01-01T00:00:00.000Z#" + entry["tweet_id"]["S"]}}
        client.put_item(TableName=tables["timelines"], Item=twin)

    result = _quiet_run(copy_one)
    assert result.duplicated == 1 and result.lost == 0
    assert result.details["timeline entries doubled"] == 1


def test_a_delete_the_fanout_never_applied_is_counted_as_lost():
    def delete_behind_the_fanouts_back(client, tables):
        entry = _first_entry(client, tables)
        client.update_item(
            TableName=tables["tweets"],
            Key={"tweet_id": entry["tweet_id"]},
            UpdateExpression="SET deleted = :true",
            ExpressionAttributeValues={":true": {"BOOL": True}},
        )

    result = _quiet_run(delete_behind_the_fanouts_back)
    assert result.details["deleted tweets shown"] >= 1
    assert result.lost == result.details["deleted tweets shown"]
    assert "deleted tweets shown" in result.details["invariants"]


def test_the_drill_prints_nothing(capfd):
    run(40, seed=SEED, **QUIET)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_the_drill_delivers_with_the_fanout_mappings_settings():
    """FANOUT_MAPPING restates stacks/components/stream_consumer.py; read it so they cannot drift."""
    source = (PROJECT / "stacks" / "components" / "stream_consumer.py").read_text()
    [mapping] = [
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "EventSourceMapping"
    ]
    arguments = {keyword.arg: keyword.value for keyword in mapping.keywords}
    age = arguments["max_record_age"]
    assert isinstance(age, ast.Call) and isinstance(age.func, ast.Attribute)
    age_seconds = ast.literal_eval(age.args[0]) * {"seconds": 1, "minutes": 60, "hours": 3600}[age.func.attr]
    drill = fault_drill.FANOUT_MAPPING
    assert drill.batch_size == ast.literal_eval(arguments["batch_size"])
    assert drill.maximum_retry_attempts == ast.literal_eval(arguments["retry_attempts"])
    assert drill.bisect_on_error == ast.literal_eval(arguments["bisect_batch_on_error"])
    assert drill.report_batch_item_failures == ast.literal_eval(arguments["report_batch_item_failures"])
    assert drill.maximum_record_age_seconds == age_seconds


# -- the fault model -------------------------------------------------------------------------------------


@pytest.fixture
def moto_tables():
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1", config=AWS_CONFIG)
        yield client, create_tables(client, ALL_TABLES)


def _injector(client, **rates) -> FaultInjector:
    settings = {"throttle_rate": 0.0, "timeout_rate": 0.0, "attempts": 3, **rates}
    return FaultInjector(client, random.Random(SEED), **settings)


def test_a_fault_reaches_the_code_only_when_every_sdk_attempt_fails(moto_tables):
    client, tables = moto_tables
    faults = _injector(client, throttle_rate=1.0)
    with pytest.raises(ClientError) as raised:
        CountingClient(client, fault=faults).get_item(
            TableName=tables["tweets"], Key={"tweet_id": {"S": "x"}}
        )
    assert raised.value.response["Error"]["Code"] in THROTTLING_CODES
    assert faults.throttles["get_item"] == 3 and faults.surfaced["get_item"] == 1


def test_a_timeout_after_apply_is_a_lost_answer_to_a_write_that_landed(moto_tables):
    client, tables = moto_tables
    faults = _injector(client, timeout_rate=1.0, attempts=1)
    faults.rng = SimpleNamespace(random=lambda: 0.0)  # a timeout (first draw), after the apply (second)
    item = {"pk": {"S": "USER#a"}, "sk": {"S": "PROFILE"}}
    with pytest.raises(ReadTimeoutError):
        CountingClient(client, fault=faults).put_item(TableName=tables["social-graph"], Item=item)
    assert faults.timeouts_after["put_item"] == 1
    assert "Item" in client.get_item(TableName=tables["social-graph"], Key=item)


def test_a_retried_transaction_that_landed_is_answered_like_dynamodb_answers_its_token(moto_tables):
    client, tables = moto_tables
    faults = _injector(client)
    # The first attempt lands and loses its answer, the second goes through.
    outcomes = iter([(ReadTimeoutError(endpoint_url="https://x"), "landed"), (None, None)])

    def scripted(operation, call, kwargs):
        error, answer = next(outcomes)
        return error, (call(**kwargs) if answer else None)

    faults._attempt = scripted
    graph = SocialGraph(CountingClient(client, fault=faults), tables["social-graph"])
    assert graph.follow("ann", "bob") is True  # not "already following": the write happened once
    follower = {"pk": {"S": user_pk("bob")}, "sk": {"S": follower_sk("ann")}}
    assert "Item" in client.get_item(TableName=tables["social-graph"], Key=follower)
    assert client.scan(TableName=tables["social-graph"])["Count"] == 2  # the two edges, once
