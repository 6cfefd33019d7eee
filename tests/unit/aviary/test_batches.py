"""Batch reads and writes: what DynamoDB leaves unprocessed is sent again, a bounded number of times,
and a throttled call is left to botocore's retries alone."""

from __future__ import annotations

import json
import random
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from botocore.retries import standard

from aviary.batches import (
    BatchIncomplete,
    UnprocessedRetries,
    batch_get,
    batch_get_items,
    batch_write,
)
from aviary.clients import AWS_CONFIG
from tools.local_aws.in_process import FAKE_CREDENTIALS


def put(n: int) -> dict[str, Any]:
    return {"PutRequest": {"Item": {"pk": {"S": f"k{n}"}}}}


def key(n: int) -> dict[str, Any]:
    return {"pk": {"S": f"k{n}"}}


class ScriptedTable:
    """A DynamoDB client whose batch calls process at most `per_call` requests (or keys) of each table
    per call, recording every request it was sent; `error` is raised by every call instead."""

    def __init__(self, per_call: int, error: ClientError | None = None) -> None:
        self.per_call = per_call
        self.error = error
        self.sent: list[dict[str, Any]] = []
        self.written: list[dict[str, Any]] = []

    def batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        self.sent.append(RequestItems)
        if self.error is not None:
            raise self.error
        left = {}
        for table, requests in RequestItems.items():
            self.written.extend(requests[: self.per_call])
            left[table] = requests[self.per_call :]
        return {"UnprocessedItems": left}

    def batch_get_item(self, RequestItems: dict[str, dict[str, Any]]) -> dict[str, Any]:
        self.sent.append(RequestItems)
        if self.error is not None:
            raise self.error
        responses, left = {}, {}
        for table, request in RequestItems.items():
            keys = request["Keys"]
            responses[table] = [{**k, "table": {"S": table}} for k in keys[: self.per_call]]
            left[table] = {**request, "Keys": keys[self.per_call :]}
        return {"Responses": responses, "UnprocessedKeys": left}


def retries(sleeps: list[float], attempts: int = 4, **options: Any) -> UnprocessedRetries:
    return UnprocessedRetries(attempts=attempts, sleep=sleeps.append, rng=random.Random(5), **options)


def throttling_error(operation: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, operation
    )


def test_unprocessed_items_are_sent_again_and_only_they():
    table, sleeps = ScriptedTable(per_call=10), []

    batch_write(table, "timelines", [put(n) for n in range(25)], retries(sleeps))

    assert [len(request["timelines"]) for request in table.sent] == [25, 15, 5]
    assert table.written == [put(n) for n in range(25)]  # each exactly once
    assert len(sleeps) == 2  # between attempts, none before the first


def test_unprocessed_items_are_sent_a_bounded_number_of_times_then_named():
    table, sleeps = ScriptedTable(per_call=0), []

    with pytest.raises(BatchIncomplete) as raised:
        batch_write(table, "timelines", [put(n) for n in range(3)], retries(sleeps, attempts=4))

    assert len(table.sent) == 4 and len(sleeps) == 3
    assert raised.value.operation == "BatchWriteItem"
    assert raised.value.unprocessed == {"timelines": [put(0), put(1), put(2)]}
    assert str(raised.value) == (
        "3 of 3 BatchWriteItem requests to timelines stayed unprocessed after 4 attempts "
        "(the table is throttled); retry later"
    )


@pytest.mark.parametrize("operation", ["BatchWriteItem", "BatchGetItem"])
def test_a_throttled_call_is_not_sent_again_by_the_helper(operation):
    # botocore's standard retry mode already made its attempts at it; more here would multiply them.
    table, sleeps = ScriptedTable(per_call=25, error=throttling_error(operation)), []

    with pytest.raises(ClientError, match="ProvisionedThroughputExceeded"):
        if operation == "BatchWriteItem":
            batch_write(table, "timelines", [put(1)], retries(sleeps))
        else:
            batch_get_items(table, "tweets", [key(1)], retries(sleeps))

    assert len(table.sent) == 1 and sleeps == []


def test_keys_left_unprocessed_are_asked_for_again_across_tables():
    table, sleeps = ScriptedTable(per_call=1), []
    request = {
        "tweets": {"Keys": [key(1), key(2)], "ConsistentRead": True},
        "counts": {"Keys": [key(3)], "ConsistentRead": True},
    }

    found = batch_get(table, request, retries(sleeps))

    assert found == {
        "tweets": [{**key(1), "table": {"S": "tweets"}}, {**key(2), "table": {"S": "tweets"}}],
        "counts": [{**key(3), "table": {"S": "counts"}}],
    }
    # The second call asks for the one key left, with its read settings; a table with none left is not sent.
    assert table.sent[1] == {"tweets": {"Keys": [key(2)], "ConsistentRead": True}}
    assert len(table.sent) == 2 and len(sleeps) == 1


def test_a_table_with_nothing_found_reads_as_empty_not_missing():
    class NothingThere:
        def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
            return {"Responses": {}, "UnprocessedKeys": {}}

    assert batch_get(NothingThere(), {"tweets": {"Keys": [key(1)]}}, retries([])) == {"tweets": []}


def test_keys_that_stay_unprocessed_raise_after_the_last_attempt():
    table, sleeps = ScriptedTable(per_call=0), []

    with pytest.raises(BatchIncomplete, match="2 of 2 BatchGetItem requests to tweets"):
        batch_get_items(table, "tweets", [key(1), key(2)], retries(sleeps, attempts=3), consistent=True)

    assert len(table.sent) == 3 and len(sleeps) == 2
    assert all(request["tweets"]["ConsistentRead"] is True for request in table.sent)


def test_backoff_grows_exponentially_with_full_jitter_up_to_a_cap():
    sleeps: list[float] = []
    with pytest.raises(BatchIncomplete):
        batch_write(
            ScriptedTable(per_call=0),
            "timelines",
            [put(1)],
            retries(sleeps, attempts=6, base_delay=0.1, max_delay=0.5),
        )
    ceilings = [0.1, 0.2, 0.4, 0.5, 0.5]
    assert len(sleeps) == len(ceilings)
    assert all(0 <= s <= c for s, c in zip(sleeps, ceilings, strict=True))
    assert len(set(sleeps)) == len(sleeps)  # jittered, not a fixed schedule


def test_at_least_one_attempt():
    with pytest.raises(ValueError, match="attempts must be at least 1, not 0"):
        UnprocessedRetries(attempts=0)


class _Body:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_kwargs: Any) -> Any:
        return iter([self.body])


def test_with_the_shared_config_a_throttled_batch_is_sent_three_times_in_all(monkeypatch):
    """botocore retries the throttled call (AWS_CONFIG's three attempts) and the helper adds none:
    before, the fan-out's own retries made that up to five times three."""
    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda _self, _context: 0)
    client = boto3.client(
        "dynamodb",
        region_name="us-east-1",
        config=AWS_CONFIG,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    sends: list[str] = []

    def throttle(request: Any, **_kwargs: Any) -> AWSResponse:
        sends.append(request.url)
        body = json.dumps(
            {"__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"}
        )
        return AWSResponse(request.url, 400, {}, _Body(body.encode()))

    client.meta.events.register("before-send.dynamodb.BatchWriteItem", throttle)
    sleeps: list[float] = []

    with pytest.raises(ClientError, match="ProvisionedThroughputExceeded"):
        batch_write(client, "timelines", [put(1)], retries(sleeps, attempts=5))

    assert len(sends) == AWS_CONFIG.retries["total_max_attempts"] == 3
    assert sleeps == []
