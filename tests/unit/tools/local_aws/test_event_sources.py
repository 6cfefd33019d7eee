"""The local event source mappings: Lambda's stream delivery rules, and the moto stream and queue pollers."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from aviary.clients import AWS_CONFIG
from aviary.schema import TWEETS
from tools.local_aws.event_sources import (
    Checkpoints,
    LambdaContext,
    MappingSettings,
    QueuePoller,
    StreamDelivery,
    StreamPoller,
    failure_message,
    lambda_stream_record,
    matches,
)
from tools.local_aws.tables import create_table

REGION = "us-west-2"  # not moto's hard-coded stream record region, so the poller's own is visible
ACCOUNT = "123456789012"
STREAM_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/aviary-tweets/stream/2026-11-21T00:00:00.000"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:aviary-fanout"
FIRST_SEQUENCE = 1100000000017454423009  # where moto's shards start
NOW = 1_795_000_000.0


# -- records, handlers and failures, by record number ---------------------------------------------------


def sequence_number(n: int) -> str:
    return str(FIRST_SEQUENCE + n)


def number(record: dict[str, Any]) -> int:
    return int(record["dynamodb"]["SequenceNumber"]) - FIRST_SEQUENCE


def record(n: int, *, created: float = NOW) -> dict[str, Any]:
    """Stream record n as Lambda passes it to a function (epoch-second timestamps)."""
    return {
        "eventID": f"event-{n}",
        "eventName": "INSERT",
        "eventSource": "aws:dynamodb",
        "eventVersion": "1.1",
        "awsRegion": REGION,
        "eventSourceARN": STREAM_ARN,
        "dynamodb": {
            "ApproximateCreationDateTime": created,
            "Keys": {"tweet_id": {"S": f"tweet-{n}"}},
            "NewImage": {"tweet_id": {"S": f"tweet-{n}"}},
            "SequenceNumber": sequence_number(n),
            "SizeBytes": 50,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }


def records(count: int, **options: Any) -> list[dict[str, Any]]:
    return [record(n, **options) for n in range(count)]


def failed(*numbers: int) -> dict[str, Any]:
    """A partial batch response naming `numbers` as failed."""
    return {"batchItemFailures": [{"itemIdentifier": sequence_number(n)} for n in numbers]}


class Boom(Exception):
    pass


class RecordingHandler:
    """Answers with `respond(record numbers)` (which may raise) and remembers every batch it saw."""

    def __init__(self, respond: Callable[[list[int]], Any] = lambda _numbers: None) -> None:
        self.respond = respond
        self.batches: list[list[int]] = []
        self.contexts: list[Any] = []

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        numbers = [number(r) for r in event["Records"]]
        self.batches.append(numbers)
        self.contexts.append(context)
        return self.respond(numbers)


def poison(*bad: int) -> Callable[[list[int]], Any]:
    """A handler that raises on any batch holding one of `bad`."""

    def respond(numbers: list[int]) -> None:
        if set(numbers) & set(bad):
            raise Boom(f"cannot process {sorted(set(numbers) & set(bad))}")

    return respond


def answers(*responses: Any) -> Callable[[list[int]], Any]:
    """Each call answers with the next of `responses` (an exception is raised); then succeeds."""
    pending = list(responses)

    def respond(_numbers: list[int]) -> Any:
        answer = pending.pop(0) if pending else None
        if isinstance(answer, Exception):
            raise answer
        return answer

    return respond


class FailureDestination:
    def __init__(self) -> None:
        self.runs: list[tuple[list[int], str, int]] = []

    def __call__(self, given: list[dict[str, Any]], condition: str, invocations: int) -> None:
        self.runs.append(([number(r) for r in given], condition, invocations))


def delivery(
    handler: RecordingHandler, clock: Callable[[], float] = lambda: NOW, **mapping: Any
) -> tuple[StreamDelivery, FailureDestination]:
    destination = FailureDestination()
    return StreamDelivery(handler, MappingSettings(**mapping), destination, clock=clock), destination


# -- batches and partial batch responses ----------------------------------------------------------------


def test_records_arrive_in_order_in_batches_of_batch_size_with_a_new_context_each():
    handler = RecordingHandler()
    destination = FailureDestination()
    stream = StreamDelivery(
        handler, MappingSettings(batch_size=3), destination, context=object, clock=lambda: NOW
    )

    stream.deliver(records(7))

    assert handler.batches == [[0, 1, 2], [3, 4, 5], [6]]
    assert len({id(context) for context in handler.contexts}) == 3
    assert destination.runs == []
    assert (stream.counts.invocations, stream.counts.delivered, stream.counts.retries) == (3, 7, 0)


def test_a_partial_failure_retries_from_the_earliest_failed_record_and_counts_the_rest_delivered():
    # Named out of order: the earliest one decides, and bisect does not apply to a partial response.
    handler = RecordingHandler(answers(failed(3, 1)))
    stream, destination = delivery(handler, batch_size=10, bisect_on_error=True)

    stream.deliver(records(5))

    assert handler.batches == [[0, 1, 2, 3, 4], [1, 2, 3, 4]]
    assert destination.runs == []
    assert (stream.counts.delivered, stream.counts.retries, stream.counts.bisections) == (5, 1, 0)


def test_a_partial_failure_naming_the_first_record_retries_the_whole_batch_without_halving_it():
    # Lambda: with both settings on, a partial batch response bisects "at the returned sequence
    # number" and retries only the remaining records; halving is for a function error.
    handler = RecordingHandler(answers(failed(0)))
    stream, destination = delivery(handler, batch_size=10, bisect_on_error=True)

    stream.deliver(records(4))

    assert handler.batches == [[0, 1, 2, 3], [0, 1, 2, 3]]
    assert destination.runs == []
    assert (stream.counts.delivered, stream.counts.bisections) == (4, 0)


@pytest.mark.parametrize(
    "response",
    [
        {"batchItemFailures": [{"itemIdentifier": sequence_number(99)}]},
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"itemIdentifier": None}]},
        {"batchItemFailures": [{}]},
        {"batchItemFailures": [{"itemIdentifier": sequence_number(2)}, {"itemIdentifier": "nope"}]},
    ],
    ids=["not-in-batch", "empty", "null", "missing", "one-unknown-of-two"],
)
def test_an_identifier_that_names_no_record_of_the_batch_fails_the_whole_batch(response):
    handler = RecordingHandler(answers(response))
    stream, _destination = delivery(handler, bisect_on_error=False)

    stream.deliver(records(3))

    assert handler.batches == [[0, 1, 2], [0, 1, 2]]
    assert (stream.counts.delivered, stream.counts.retries) == (3, 1)


@pytest.mark.parametrize("response", [None, {}, {"batchItemFailures": []}, {"batchItemFailures": None}])
def test_an_empty_or_absent_failure_list_is_a_success(response):
    handler = RecordingHandler(lambda _numbers: response)
    stream, destination = delivery(handler)

    stream.deliver(records(3))

    assert handler.batches == [[0, 1, 2]]
    assert (stream.counts.delivered, destination.runs) == (3, [])


def test_failures_are_ignored_unless_the_mapping_reports_batch_item_failures():
    handler = RecordingHandler(lambda _numbers: failed(0))
    stream, destination = delivery(handler, report_batch_item_failures=False)

    stream.deliver(records(3))

    assert handler.batches == [[0, 1, 2]]
    assert (stream.counts.delivered, destination.runs) == (3, [])


# -- function errors: bisect and bounded retries --------------------------------------------------------


def test_bisect_corners_a_poison_record_so_every_other_record_is_delivered():
    handler = RecordingHandler(poison(5))
    stream, destination = delivery(handler, batch_size=8, bisect_on_error=True, maximum_retry_attempts=4)

    stream.deliver(records(8))

    # Each half keeps the count of the batch it came from: record 5 has failed three times by the
    # time it is alone, so it gets two more tries, not four.
    assert handler.batches == [
        [0, 1, 2, 3, 4, 5, 6, 7],
        [0, 1, 2, 3],
        [4, 5, 6, 7],
        [4, 5],
        [4],
        [5],
        [5],
        [6, 7],
    ]
    assert destination.runs == [([5], "RetryAttemptsExhausted", 5)]
    counts = stream.counts
    assert (counts.delivered, counts.sent_to_failure_destination) == (7, 1)
    assert (counts.invocations, counts.bisections, counts.retries) == (8, 3, 4)


def test_without_bisect_a_function_error_retries_the_whole_batch_up_to_the_limit():
    handler = RecordingHandler(poison(2))
    stream, destination = delivery(handler, bisect_on_error=False, maximum_retry_attempts=2)

    stream.deliver(records(4))

    assert handler.batches == [[0, 1, 2, 3]] * 3  # the first try and two retries
    assert destination.runs == [([0, 1, 2, 3], "RetryAttemptsExhausted", 3)]
    assert (stream.counts.delivered, stream.counts.retries, stream.counts.bisections) == (0, 2, 0)


def test_a_partial_failure_retried_past_the_limit_gives_up_only_the_records_from_the_failed_one():
    handler = RecordingHandler(lambda numbers: failed(2) if 2 in numbers else None)
    stream, destination = delivery(handler, maximum_retry_attempts=1)

    stream.deliver(records(4))

    assert handler.batches == [[0, 1, 2, 3], [2, 3]]
    assert destination.runs == [([2, 3], "RetryAttemptsExhausted", 2)]
    assert (stream.counts.delivered, stream.counts.sent_to_failure_destination) == (2, 2)


def test_zero_retry_attempts_gives_up_after_the_first_failure():
    handler = RecordingHandler(poison(0))
    stream, destination = delivery(handler, maximum_retry_attempts=0, bisect_on_error=True)

    stream.deliver(records(2))

    assert handler.batches == [[0, 1]]
    assert destination.runs == [([0, 1], "RetryAttemptsExhausted", 1)]


def test_unlimited_retries_keep_trying_until_the_handler_recovers():
    handler = RecordingHandler(answers(*[Boom("down")] * 20))
    stream, destination = delivery(
        handler, maximum_retry_attempts=-1, bisect_on_error=False, maximum_record_age_seconds=-1
    )

    stream.deliver(records(2))

    assert handler.batches == [[0, 1]] * 21
    assert (stream.counts.delivered, destination.runs) == (2, [])


def test_giving_up_on_one_batch_moves_on_to_the_next():
    handler = RecordingHandler(poison(1))
    stream, destination = delivery(handler, batch_size=2, bisect_on_error=False, maximum_retry_attempts=0)

    stream.deliver(records(5))

    assert handler.batches == [[0, 1], [2, 3], [4]]
    assert destination.runs == [([0, 1], "RetryAttemptsExhausted", 1)]
    assert stream.counts.delivered == 3


# -- record age ------------------------------------------------------------------------------------------


def test_records_older_than_the_maximum_age_go_to_the_failure_destination_without_an_invocation():
    old = [record(n, created=NOW - 61) for n in range(2)]
    fresh = [record(n, created=NOW - 60) for n in range(2, 4)]
    handler = RecordingHandler()
    stream, destination = delivery(handler, maximum_record_age_seconds=60)

    stream.deliver(old + fresh)

    assert handler.batches == [[2, 3]]
    assert destination.runs == [([0, 1], "RecordAgeExceeded", 0)]
    assert (stream.counts.delivered, stream.counts.sent_to_failure_destination) == (2, 2)


def test_a_record_that_ages_out_while_being_retried_is_given_up_as_too_old():
    clock = [NOW]

    def respond(_numbers: list[int]) -> None:
        clock[0] += 50  # every failed try takes a while
        raise Boom("still failing")

    handler = RecordingHandler(respond)
    stream, destination = delivery(
        handler, clock=lambda: clock[0], maximum_record_age_seconds=120, maximum_retry_attempts=-1
    )

    stream.deliver([record(0)])

    assert handler.batches == [[0]] * 3  # at 0 s, 50 s and 100 s; at 150 s it is too old
    assert destination.runs == [([0], "RecordAgeExceeded", 3)]


def test_a_maximum_age_of_minus_one_delivers_records_of_any_age():
    handler = RecordingHandler()
    stream, destination = delivery(handler, maximum_record_age_seconds=-1)

    stream.deliver([record(0, created=0.0)])

    assert handler.batches == [[0]]
    assert destination.runs == []


# -- the invariant: every record delivered or given up, once, in stream order ---------------------------


@settings(max_examples=300, deadline=None)
@given(
    count=st.integers(0, 24),
    batch_size=st.integers(1, 8),
    bisect=st.booleans(),
    retries=st.integers(-1, 3),
    data=st.data(),
)
def test_every_record_is_delivered_or_given_up_exactly_once_in_stream_order(
    count, batch_size, bisect, retries, data
):
    # Per record: how many tries it fails (None: every try, only with bounded retries) and how.
    failures = st.integers(0, 3) | (st.none() if retries >= 0 else st.nothing())
    budget = data.draw(st.lists(failures, min_size=count, max_size=count), label="failures")
    style = data.draw(
        st.lists(st.sampled_from(["raise", "report", "unknown"]), min_size=count, max_size=count),
        label="style",
    )
    outcome: list[tuple[str, int]] = []  # what happened to each record, in the order it happened

    def respond(numbers: list[int]) -> Any:
        failing = [n for n in numbers if budget[n] is None or budget[n] > 0]
        for n in failing:
            if budget[n] is not None:
                budget[n] -= 1
        if not failing:
            outcome.extend(("delivered", n) for n in numbers)
            return None
        first = failing[0]
        if style[first] == "raise":
            raise Boom(first)
        if style[first] == "unknown":
            return {"batchItemFailures": [{"itemIdentifier": "not-a-sequence-number"}]}
        outcome.extend(("delivered", n) for n in numbers[: numbers.index(first)])
        return failed(*reversed(failing))

    given_up: list[tuple[list[int], str, int]] = []

    def on_failure(batch: list[dict[str, Any]], condition: str, invocations: int) -> None:
        given_up.append(([number(r) for r in batch], condition, invocations))
        outcome.extend(("failed", number(r)) for r in batch)

    handler = RecordingHandler(respond)
    mapping = MappingSettings(
        batch_size=batch_size,
        maximum_retry_attempts=retries,
        bisect_on_error=bisect,
        maximum_record_age_seconds=-1,
    )
    stream = StreamDelivery(handler, mapping, on_failure, clock=lambda: NOW)

    stream.deliver(records(count))

    assert [n for _, n in outcome] == list(range(count))
    assert stream.counts.delivered == sum(kind == "delivered" for kind, _ in outcome)
    assert stream.counts.sent_to_failure_destination == sum(kind == "failed" for kind, _ in outcome)
    assert stream.counts.invocations == len(handler.batches)
    for batch in handler.batches:
        assert 0 < len(batch) <= batch_size
        assert batch == list(range(batch[0], batch[0] + len(batch)))
        assert batch[0] // batch_size == batch[-1] // batch_size  # never across two of deliver's batches
    tries = {n: sum(n in batch for batch in handler.batches) for n in range(count)}
    if retries >= 0:
        assert max(tries.values(), default=0) <= retries + 1
    for numbers, condition, invocations in given_up:
        assert condition == "RetryAttemptsExhausted"
        assert all(tries[n] == invocations for n in numbers)


# -- mapping settings, failure messages, Lambda-shaped records ------------------------------------------


def test_mapping_settings_from_a_list_event_source_mappings_entry():
    queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:aviary-fanout-failures"
    entry = {
        "EventSourceArn": STREAM_ARN,
        "BatchSize": 25,
        "MaximumRetryAttempts": 3,
        "BisectBatchOnFunctionError": True,
        "MaximumRecordAgeInSeconds": 600,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "DestinationConfig": {"OnFailure": {"Destination": queue}},
    }

    assert MappingSettings.of(entry) == MappingSettings(
        batch_size=25,
        maximum_retry_attempts=3,
        bisect_on_error=True,
        maximum_record_age_seconds=600,
        report_batch_item_failures=True,
        on_failure_destination=queue,
    )


def test_a_filtered_mapping_delivers_only_matching_records_and_counts_the_rest_as_done():
    entry = {
        "EventSourceArn": STREAM_ARN,
        "FilterCriteria": {"Filters": [{"Pattern": '{"eventName":["MODIFY"]}'}]},
    }
    mapping = MappingSettings.of(entry)
    handler = RecordingHandler()
    modified = [{**r, "eventName": "MODIFY"} if number(r) % 2 else r for r in records(6)]

    stream = StreamDelivery(handler, mapping, FailureDestination())
    stream.deliver(modified)

    assert mapping.filters == ({"eventName": ["MODIFY"]},)
    assert handler.batches == [[1, 3, 5]]
    assert stream.counts.delivered == 3


@pytest.mark.parametrize(
    ("pattern", "event", "expected"),
    [
        ({"eventName": ["MODIFY", "REMOVE"]}, {"eventName": "REMOVE"}, True),
        ({"eventName": ["MODIFY"]}, {"eventName": "INSERT"}, False),
        ({"dynamodb": {"Keys": {"pk": {"S": ["a"]}}}}, {"dynamodb": {"Keys": {"pk": {"S": "a"}}}}, True),
        ({"dynamodb": {"Keys": {"pk": {"S": ["a"]}}}}, {"dynamodb": {"Keys": {}}}, False),
        ({"dynamodb": {"NewImage": {"x": {"N": ["1"]}}}}, {"dynamodb": "not an object"}, False),
        (
            {"dynamodb": {"Keys": {"sk": {"S": [{"prefix": "FOLLOWS#"}]}}}},
            {"dynamodb": {"Keys": {"sk": {"S": "FOLLOWS#b"}}}},
            True,
        ),
        (
            {"dynamodb": {"Keys": {"sk": {"S": [{"prefix": "FOLLOWS#"}]}}}},
            {"dynamodb": {"Keys": {"sk": {"S": "FOLLOWER#b"}}}},
            False,
        ),
        ({"n": [{"prefix": "1"}]}, {"n": 12}, False),  # a prefix matches strings only
    ],
)
def test_filter_patterns_match_as_lambda_matches_equality_and_prefixes(pattern, event, expected):
    assert matches(pattern, event) is expected


@pytest.mark.parametrize(
    "pattern",
    [
        '{"eventName": [{"numeric": [">", 1]}]}',
        '{"eventName": [{"prefix": "MOD", "suffix": "Y"}]}',
        '{"eventName": "MODIFY"}',
        '{"x": [["nested"]]}',
    ],
)
def test_filter_forms_the_local_runtime_cannot_match_are_refused(pattern):
    with pytest.raises(ValueError, match="does not match"):
        MappingSettings.of({"FilterCriteria": {"Filters": [{"Pattern": pattern}]}})


def test_mapping_settings_of_a_bare_entry_are_lambdas_defaults():
    assert MappingSettings.of({"EventSourceArn": STREAM_ARN, "DestinationConfig": {}}) == MappingSettings(
        batch_size=100,
        maximum_retry_attempts=-1,
        bisect_on_error=False,
        maximum_record_age_seconds=-1,
        report_batch_item_failures=False,
        on_failure_destination=None,
    )


def test_the_failure_message_names_the_records_positions_as_lambda_does():
    given = [record(4, created=1_795_000_000), record(5), record(6, created=1_795_000_007)]

    message = failure_message(
        given, "RetryAttemptsExhausted", 3, function_arn=FUNCTION_ARN, shard_id="shardId-0001"
    )

    assert message["DDBStreamBatchInfo"] == {
        "shardId": "shardId-0001",
        "startSequenceNumber": sequence_number(4),
        "endSequenceNumber": sequence_number(6),
        "approximateArrivalOfFirstRecord": "2026-11-18T11:06:40Z",
        "approximateArrivalOfLastRecord": "2026-11-18T11:06:47Z",
        "batchSize": 3,
        "streamArn": STREAM_ARN,
    }
    context = message["requestContext"]
    assert uuid.UUID(context.pop("requestId"))
    assert context == {
        "functionArn": FUNCTION_ARN,
        "condition": "RetryAttemptsExhausted",
        "approximateInvokeCount": 3,
    }
    assert message["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert message["version"] == "1.0"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", message["timestamp"])
    assert "NewImage" not in json.dumps(message)  # positions only, never the contents


def test_a_get_records_record_becomes_the_record_lambda_passes_on():
    created = datetime(2026, 11, 18, 11, 6, 40, 250_000, tzinfo=UTC)
    raw = {
        "eventName": "MODIFY",
        "awsRegion": "us-east-1",  # what moto says whatever the region
        "dynamodb": {"ApproximateCreationDateTime": created, "SequenceNumber": "7", "Keys": {}},
    }

    shaped = lambda_stream_record(raw, stream_arn=STREAM_ARN, region=REGION)

    assert shaped == {
        "eventName": "MODIFY",
        "awsRegion": REGION,
        "eventSourceARN": STREAM_ARN,
        "dynamodb": {"ApproximateCreationDateTime": 1_795_000_000.25, "SequenceNumber": "7", "Keys": {}},
    }
    assert raw["dynamodb"]["ApproximateCreationDateTime"] is created  # the input is left alone


def test_lambda_context_for_a_function_configuration():
    make = LambdaContext.for_function(
        {"FunctionName": "aviary-fanout", "FunctionArn": FUNCTION_ARN, "MemorySize": 1024, "Timeout": 30}
    )

    first, second = make(), make()

    assert (first.function_name, first.invoked_function_arn) == ("aviary-fanout", FUNCTION_ARN)
    assert first.memory_limit_in_mb == 1024
    assert 25_000 < first.get_remaining_time_in_millis() <= 30_000
    assert first.aws_request_id != second.aws_request_id


def test_checkpoints_survive_a_restart(tmp_path):
    path = tmp_path / "state" / "checkpoints.json"
    checkpoints = Checkpoints(path)
    assert checkpoints.get("fanout") is None

    checkpoints.put("fanout", "11")
    checkpoints.put("replication", "5")
    checkpoints.put("fanout", "12")

    again = Checkpoints(path)
    assert (again.get("fanout"), again.get("replication"), again.get("other")) == ("12", "5", None)
    assert sorted(p.name for p in path.parent.iterdir()) == ["checkpoints.json"]  # no temporary left


# -- the pollers against moto ----------------------------------------------------------------------------


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    with mock_aws():
        yield


class Tweets:
    """The tweets table (streamed, new and old images) in moto, and its stream."""

    def __init__(self) -> None:
        self.dynamodb = boto3.client("dynamodb", region_name=REGION, config=AWS_CONFIG)
        self.streams = boto3.client("dynamodbstreams", region_name=REGION, config=AWS_CONFIG)
        self.name = create_table(self.dynamodb, TWEETS)
        self.stream_arn = self.dynamodb.describe_table(TableName=self.name)["Table"]["LatestStreamArn"]

    def put(self, n: int, text: str = "hello") -> None:
        item = {"tweet_id": {"S": f"tweet-{n}"}, "author_id": {"S": "alice"}, "text": {"S": text}}
        self.dynamodb.put_item(TableName=self.name, Item=item)

    def poller(
        self, checkpoints: Checkpoints, consume: Callable[[list[dict[str, Any]]], None]
    ) -> StreamPoller:
        return StreamPoller(
            self.streams,
            self.stream_arn,
            region=REGION,
            name="fanout",
            checkpoints=checkpoints,
            consume=consume,
        )


def tweet_ids(batch: list[dict[str, Any]]) -> list[str]:
    return [r["dynamodb"]["Keys"]["tweet_id"]["S"] for r in batch]


def test_the_stream_poller_delivers_new_records_once_and_resumes_after_its_checkpoint(aws, tmp_path):
    tweets = Tweets()
    checkpoints = Checkpoints(tmp_path / "checkpoints.json")
    pages: list[list[dict[str, Any]]] = []
    poller = tweets.poller(checkpoints, pages.append)
    for n in range(3):
        tweets.put(n)
    tweets.put(1, "edited")

    assert poller.poll_once() == 4
    assert poller.poll_once() == 0

    [page] = pages
    assert [r["eventName"] for r in page] == ["INSERT", "INSERT", "INSERT", "MODIFY"]
    assert tweet_ids(page) == ["tweet-0", "tweet-1", "tweet-2", "tweet-1"]
    modify = page[3]
    assert (modify["awsRegion"], modify["eventSourceARN"]) == (REGION, tweets.stream_arn)
    assert modify["dynamodb"]["OldImage"]["text"] == {"S": "hello"}
    assert modify["dynamodb"]["NewImage"]["text"] == {"S": "edited"}
    assert isinstance(modify["dynamodb"]["ApproximateCreationDateTime"], float)
    assert checkpoints.get("fanout") == modify["dynamodb"]["SequenceNumber"]

    tweets.put(3)
    restarted = tweets.poller(Checkpoints(tmp_path / "checkpoints.json"), pages.append)
    assert restarted.poll_once() == 1
    assert tweet_ids(pages[1]) == ["tweet-3"]


def test_a_page_whose_consumer_fails_is_read_again(aws, tmp_path):
    tweets = Tweets()
    checkpoints = Checkpoints(tmp_path / "checkpoints.json")
    tweets.put(0)

    def fail(_page: list[dict[str, Any]]) -> None:
        raise Boom("consumer down")

    with pytest.raises(Boom):
        tweets.poller(checkpoints, fail).poll_once()
    assert checkpoints.get("fanout") is None

    pages: list[list[dict[str, Any]]] = []
    assert tweets.poller(checkpoints, pages.append).poll_once() == 1
    assert tweet_ids(pages[0]) == ["tweet-0"]


def test_reading_leaves_the_checkpoint_until_the_records_are_committed(aws, tmp_path):
    tweets = Tweets()
    checkpoints = Checkpoints(tmp_path / "checkpoints.json")
    poller = tweets.poller(checkpoints, lambda _page: None)
    tweets.put(0)
    tweets.put(1)

    first = poller.read()
    assert tweet_ids(first) == tweet_ids(poller.read()) == ["tweet-0", "tweet-1"]
    assert checkpoints.get("fanout") is None

    poller.commit(first)
    tweets.put(2)
    assert tweet_ids(poller.read()) == ["tweet-2"]


def test_the_stream_poller_feeds_stream_delivery_end_to_end(aws, tmp_path):
    tweets = Tweets()
    for n in range(5):
        tweets.put(n)
    seen: list[list[str]] = []

    def record_ids(event: dict[str, Any], _context: Any) -> Any:
        seen.append(tweet_ids(event["Records"]))
        return failed_tweet(event["Records"], "tweet-3") if len(seen) == 2 else None

    destination = FailureDestination()
    stream = StreamDelivery(record_ids, MappingSettings(batch_size=2), destination)
    poller = tweets.poller(Checkpoints(tmp_path / "checkpoints.json"), stream.deliver)

    assert poller.poll_once() == 5

    assert seen == [["tweet-0", "tweet-1"], ["tweet-2", "tweet-3"], ["tweet-3"], ["tweet-4"]]
    assert (stream.counts.delivered, stream.counts.retries, destination.runs) == (5, 1, [])


def failed_tweet(batch: list[dict[str, Any]], tweet_id: str) -> dict[str, Any]:
    [failure] = [r for r in batch if r["dynamodb"]["Keys"]["tweet_id"]["S"] == tweet_id]
    return {"batchItemFailures": [{"itemIdentifier": failure["dynamodb"]["SequenceNumber"]}]}


class Queues:
    """A queue redriving to a dead-letter queue after two receives; messages reappear at once."""

    def __init__(self) -> None:
        self.sqs = boto3.client("sqs", region_name=REGION, config=AWS_CONFIG)
        self.dlq_url = self.sqs.create_queue(QueueName="uploads-dlq")["QueueUrl"]
        dlq_arn = self.arn(self.dlq_url)
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"})
        self.url = self.sqs.create_queue(
            QueueName="uploads", Attributes={"VisibilityTimeout": "0", "RedrivePolicy": redrive}
        )["QueueUrl"]
        self.queue_arn = self.arn(self.url)

    def arn(self, url: str) -> str:
        return self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]

    def send(self, *bodies: str) -> None:
        for body in bodies:
            self.sqs.send_message(QueueUrl=self.url, MessageBody=body)

    def bodies(self, url: str) -> list[str]:
        response = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30)
        return sorted(m["Body"] for m in response.get("Messages", []))


def test_the_queue_poller_deletes_what_succeeded_and_redrives_what_keeps_failing(aws):
    queues = Queues()
    queues.send("ok-1", "bad", "ok-2")
    seen: list[str] = []
    shapes: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        shapes.extend(event["Records"])
        seen.extend(r["body"] for r in event["Records"])
        return {
            "batchItemFailures": [
                {"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] == "bad"
            ]
        }

    poller = QueuePoller(
        queues.sqs, queues.queue_arn, handler, MappingSettings(batch_size=10), wait_seconds=0
    )

    polls = 0
    while poller.poll_once():
        polls += 1
        assert polls < 10, "the failing message never left the queue"

    assert sorted(seen) == ["bad", "bad", "ok-1", "ok-2"]  # received maxReceiveCount times, then redriven
    assert queues.bodies(queues.url) == []
    assert queues.bodies(queues.dlq_url) == ["bad"]
    shape = shapes[0]
    assert (shape["eventSource"], shape["eventSourceARN"], shape["awsRegion"]) == (
        "aws:sqs",
        queues.queue_arn,
        REGION,
    )
    assert shape["attributes"]["ApproximateReceiveCount"] == "1"
    assert shape["receiptHandle"] and shape["md5OfBody"]


@pytest.mark.parametrize(
    ("respond", "left"),
    [
        (lambda _records: (_ for _ in ()).throw(Boom("down")), ["a", "b"]),
        (lambda _records: {"batchItemFailures": [{"itemIdentifier": "not-a-message-id"}]}, ["a", "b"]),
        (lambda _records: {"batchItemFailures": []}, []),
        (lambda _records: None, []),
    ],
    ids=["raises", "unknown-identifier", "empty-failures", "no-response"],
)
def test_the_queue_poller_keeps_every_message_of_a_failed_batch(aws, respond, left):
    queues = Queues()
    queues.send("a", "b")
    poller = QueuePoller(
        queues.sqs,
        queues.queue_arn,
        lambda event, _context: respond(event["Records"]),
        MappingSettings(batch_size=10),
        wait_seconds=0,
    )

    assert poller.poll_once() == 2

    assert queues.bodies(queues.url) == left
