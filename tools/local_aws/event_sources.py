"""Event source mappings, done locally: DynamoDB stream and SQS records delivered to real handlers.

`StreamDelivery` keeps the rules a Lambda event source mapping applies to a stream: batches in
order, partial batch responses (retry from the first failed record), bisect on a function error,
bounded retries and record age, then an on-failure destination. `StreamPoller` and `QueuePoller`
read moto and feed handlers with the events Lambda would build.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LambdaContext:
    """The parts of Lambda's context object the handlers (and Powertools) read."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int = 512
    timeout_seconds: int = 30
    function_version: str = "$LATEST"

    def __post_init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))

    @classmethod
    def for_function(cls, configuration: dict[str, Any]) -> Callable[[], LambdaContext]:
        """A new context per invocation of the function `configuration` (GetFunctionConfiguration) names."""
        return lambda: cls(
            function_name=configuration["FunctionName"],
            invoked_function_arn=configuration["FunctionArn"],
            memory_limit_in_mb=int(configuration.get("MemorySize") or 128),
            timeout_seconds=int(configuration.get("Timeout") or 3),
        )


@dataclass(frozen=True)
class MappingSettings:
    """What an event source mapping says about delivery (the names are the Lambda API's)."""

    batch_size: int = 100
    maximum_retry_attempts: int = 5  # -1: until the record expires
    bisect_on_error: bool = True
    maximum_record_age_seconds: int = 21_600  # -1: never too old
    report_batch_item_failures: bool = True
    on_failure_destination: str | None = None  # an SQS queue ARN
    # Event filtering: a record is delivered only if it matches one of these patterns (none: all).
    filters: tuple[dict[str, Any], ...] = ()

    def accepts(self, record: dict[str, Any]) -> bool:
        return not self.filters or any(matches(pattern, record) for pattern in self.filters)

    @classmethod
    def of(cls, mapping: dict[str, Any]) -> MappingSettings:
        """From one entry of ListEventSourceMappings."""
        destination = ((mapping.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        retries = mapping.get("MaximumRetryAttempts")
        age = mapping.get("MaximumRecordAgeInSeconds")
        return cls(
            batch_size=int(mapping.get("BatchSize") or 100),
            maximum_retry_attempts=-1 if retries is None else int(retries),
            bisect_on_error=bool(mapping.get("BisectBatchOnFunctionError")),
            maximum_record_age_seconds=-1 if age is None else int(age),
            report_batch_item_failures="ReportBatchItemFailures"
            in (mapping.get("FunctionResponseTypes") or []),
            on_failure_destination=destination,
            filters=tuple(
                filter_pattern(f["Pattern"]) for f in (mapping.get("FilterCriteria") or {}).get("Filters", [])
            ),
        )


def filter_pattern(text: str) -> dict[str, Any]:
    """One event filter pattern (JSON), of the kinds matched here: nested objects, lists of values and
    of {"prefix": ...}. Lambda's other operators (numeric, exists, anything-but, ...) are refused
    rather than matched wrongly."""
    pattern = json.loads(text)

    def check(node: Any) -> None:
        if isinstance(node, dict):
            for value in node.values():
                check(value)
        elif not isinstance(node, list) or not all(_is_value_rule(item) for item in node):
            raise ValueError(f"event filter {text} uses a form the local runtime does not match")

    check(pattern)
    return pattern


def _is_value_rule(rule: Any) -> bool:
    if isinstance(rule, dict):
        return rule.keys() == {"prefix"} and isinstance(rule["prefix"], str)
    return not isinstance(rule, list)


def _accepts(rule: Any, value: Any) -> bool:
    if isinstance(rule, dict):
        return isinstance(value, str) and value.startswith(rule["prefix"])
    return value == rule


def matches(pattern: dict[str, Any], event: Any) -> bool:
    """Whether `event` matches `pattern` as Lambda event filtering matches equality and prefix rules."""
    if not isinstance(event, dict):
        return False
    for key, wanted in pattern.items():
        if isinstance(wanted, dict):
            if not matches(wanted, event.get(key)):
                return False
        elif key not in event or not any(_accepts(rule, event[key]) for rule in wanted):
            return False
    return True


class DeliveryCounts:
    invocations: int = 0
    retries: int = 0
    bisections: int = 0
    delivered: int = 0  # records whose batch finally succeeded
    sent_to_failure_destination: int = 0  # records given up on


@dataclass(frozen=True)
class _Pending:
    records: list[dict[str, Any]]
    attempts: int  # failed invocations so far that covered these records


class StreamDelivery:
    """Delivers stream records to `handler` with an event source mapping's semantics.

    `on_failure(records, condition, invocations)` receives each run of records given up on
    (retries exhausted or too old), in order; delivery then moves past them, as Lambda does.
    Retries happen at once: a local runtime gains nothing by waiting.
    """

    def __init__(
        self,
        handler: Handler,
        settings: MappingSettings,
        on_failure: Callable[[list[dict[str, Any]], str, int], None],
        *,
        context: Callable[[], Any] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.handler = handler
        self.settings = settings
        self.on_failure = on_failure
        self.context = context
        self.clock = clock
        self.counts = DeliveryCounts()

    def deliver(self, records: list[dict[str, Any]]) -> None:
        """Every record is either delivered or handed to `on_failure` before this returns (records
        the mapping's filters leave out count as delivered, as in Lambda)."""
        records = [record for record in records if self.settings.accepts(record)]
        size = self.settings.batch_size
        for start in range(0, len(records), size):
            self._deliver_batch(records[start : start + size])

    def _deliver_batch(self, batch: list[dict[str, Any]]) -> None:
        pending = deque([_Pending(batch, 0)])
        while pending:
            current = pending.popleft()
            fresh = self._drop_expired(current.records, current.attempts)
            if not fresh:
                continue
            failed_from, whole_batch_failed = self._invoke(fresh)
            if failed_from is None:
                self.counts.delivered += len(fresh)
                continue
            self.counts.delivered += failed_from
            remaining, attempts = fresh[failed_from:], current.attempts + 1
            limit = self.settings.maximum_retry_attempts
            if limit >= 0 and attempts > limit:
                self._give_up(remaining, "RetryAttemptsExhausted", attempts)
                continue
            self.counts.retries += 1
            if whole_batch_failed and self.settings.bisect_on_error and len(remaining) > 1:
                # Halve the batch to corner the record that fails; each half keeps the retry count.
                # A partial response needs no halving: it names where to resume.
                self.counts.bisections += 1
                middle = len(remaining) // 2
                pending.extendleft(
                    [_Pending(remaining[middle:], attempts), _Pending(remaining[:middle], attempts)]
                )
            else:
                pending.appendleft(_Pending(remaining, attempts))

    def _invoke(self, records: list[dict[str, Any]]) -> tuple[int | None, bool]:
        """(None when the batch succeeded, else the index of the first record to deliver again;
        whether the whole batch failed: the handler raised or answered with an unusable list)."""
        self.counts.invocations += 1
        try:
            response = self.handler({"Records": records}, self.context())
        except Exception:
            log.warning("handler raised on a batch of %d records", len(records), exc_info=True)
            return 0, True
        if not self.settings.report_batch_item_failures:
            return None, False
        failures = (response or {}).get("batchItemFailures") if isinstance(response, dict) else None
        if not failures:
            return None, False
        sequence_numbers = [r["dynamodb"]["SequenceNumber"] for r in records]
        positions = []
        for failure in failures:
            identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
            if identifier not in sequence_numbers:
                return 0, True  # Lambda treats an unknown or empty identifier as a failed batch
            positions.append(sequence_numbers.index(identifier))
        return min(positions), False

    def _drop_expired(self, records: list[dict[str, Any]], attempts: int) -> list[dict[str, Any]]:
        limit = self.settings.maximum_record_age_seconds
        if limit < 0:
            return records
        now = self.clock()
        expired = [r for r in records if now - float(r["dynamodb"]["ApproximateCreationDateTime"]) > limit]
        if expired:
            self._give_up(expired, "RecordAgeExceeded", attempts)
        return [r for r in records if r not in expired]

    def _give_up(self, records: list[dict[str, Any]], condition: str, invocations: int) -> None:
        self.counts.sent_to_failure_destination += len(records)
        self.on_failure(records, condition, invocations)


def failure_message(
    records: list[dict[str, Any]], condition: str, invocations: int, *, function_arn: str, shard_id: str
) -> dict[str, Any]:
    """The on-failure destination message Lambda sends for a DynamoDB stream batch (it names
    the records' positions, not their contents)."""
    first, last = records[0], records[-1]
    return {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invocations,
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": first["dynamodb"]["SequenceNumber"],
            "endSequenceNumber": last["dynamodb"]["SequenceNumber"],
            "approximateArrivalOfFirstRecord": _iso(first["dynamodb"]["ApproximateCreationDateTime"]),
            "approximateArrivalOfLastRecord": _iso(last["dynamodb"]["ApproximateCreationDateTime"]),
            "batchSize": len(records),
            "streamArn": first.get("eventSourceARN"),
        },
    }


def _iso(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(float(epoch_seconds), UTC).isoformat().replace("+00:00", "Z")


def lambda_stream_record(record: dict[str, Any], *, stream_arn: str, region: str) -> dict[str, Any]:
    """A GetRecords record as Lambda passes it to a function: epoch seconds, source ARN and region."""
    dynamodb = dict(record["dynamodb"])
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        dynamodb["ApproximateCreationDateTime"] = created.timestamp()
    return {**record, "awsRegion": region, "eventSourceARN": stream_arn, "dynamodb": dynamodb}


class Checkpoints:
    """The last delivered sequence number per stream, in a JSON file, so a restart resumes after it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def get(self, name: str) -> str | None:
        with self._lock:
            return self._read().get(name)

    def put(self, name: str, sequence_number: str) -> None:
        with self._lock:
            data = self._read()
            data[name] = sequence_number
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(json.dumps(data, indent=1, sort_keys=True))
            temporary.replace(self.path)

    def _read(self) -> dict[str, str]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}


class StreamPoller:
    """Reads one table's stream in moto after a checkpoint: poll_once hands each page to `consume`;
    without one, the owner calls read() and commit() itself (replication reads several at once)."""

    def __init__(
        self,
        streams_client: Any,
        stream_arn: str,
        *,
        region: str,
        name: str,
        checkpoints: Checkpoints,
        consume: Callable[[list[dict[str, Any]]], None] | None = None,
        page_size: int = 1000,
    ) -> None:
        self.streams = streams_client
        self.stream_arn = stream_arn
        self.region = region
        self.name = name
        self.checkpoints = checkpoints
        self.consume = consume
        self.page_size = page_size
        self._shard_id: str | None = None  # a table keeps its stream (and moto its one shard)

    def poll_once(self) -> int:
        """Delivers what is new since the checkpoint, then moves it; returns the number of records."""
        if self.consume is None:
            raise TypeError(f"{self.name}: a poller without `consume` is read and committed by its owner")
        records = self.read()
        if records:
            self.consume(records)
            self.commit(records)
        return len(records)

    def read(self) -> list[dict[str, Any]]:
        """What is new since the checkpoint, as Lambda would pass it; the checkpoint stays put."""
        if self._shard_id is None:
            self._shard_id = shard_of(self.streams, self.stream_arn)
        records = records_after(
            self.streams,
            self.stream_arn,
            self.checkpoints.get(self.name),
            limit=self.page_size,
            shard_id=self._shard_id,
        )
        return [lambda_stream_record(r, stream_arn=self.stream_arn, region=self.region) for r in records]

    def commit(self, records: list[dict[str, Any]]) -> None:
        """Moves the checkpoint past `records` (read from this stream, and dealt with)."""
        self.checkpoints.put(self.name, records[-1]["dynamodb"]["SequenceNumber"])


def shard_of(streams_client: Any, stream_arn: str) -> str:
    """The stream's shard: moto keeps one per table."""
    return streams_client.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]


def records_after(
    streams_client: Any,
    stream_arn: str,
    sequence_number: str | None,
    *,
    limit: int,
    shard_id: str | None = None,
) -> list[dict[str, Any]]:
    """Up to `limit` records of the stream's (one, in moto) shard after `sequence_number` (None: all)."""
    request = {"StreamArn": stream_arn, "ShardId": shard_id or shard_of(streams_client, stream_arn)}
    if sequence_number is None:
        request["ShardIteratorType"] = "TRIM_HORIZON"
    else:
        request |= {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": sequence_number}
    iterator = streams_client.get_shard_iterator(**request)["ShardIterator"]
    return streams_client.get_records(ShardIterator=iterator, Limit=limit)["Records"]


class QueuePoller:
    """An SQS event source mapping: receive, invoke with an SQS event, delete what succeeded.

    Failed messages are left to reappear after the visibility timeout; the queue's redrive
    policy moves them to its dead-letter queue after maxReceiveCount receives, as in AWS.
    """

    def __init__(
        self,
        sqs_client: Any,
        queue_arn: str,
        handler: Handler,
        settings: MappingSettings,
        *,
        context: Callable[[], Any] = lambda: None,
        wait_seconds: int = 1,
    ) -> None:
        self.sqs = sqs_client
        self.queue_arn = queue_arn
        _, _, _, region, account, name = queue_arn.split(":")
        self.region = region
        self.queue_url = sqs_client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        self.handler = handler
        self.settings = settings
        self.context = context
        self.wait_seconds = wait_seconds

    def poll_once(self) -> int:
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=min(10, self.settings.batch_size),
            WaitTimeSeconds=self.wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        failed = self._failed_ids([self._record(m) for m in messages])
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(done[start : start + 10])
                ],
            )
        return len(messages)

    def _failed_ids(self, records: list[dict[str, Any]]) -> set[str]:
        every = {r["messageId"] for r in records}
        try:
            response = self.handler({"Records": records}, self.context())
        except Exception:
            log.warning("handler raised on %d queue messages", len(records), exc_info=True)
            return every
        if not self.settings.report_batch_item_failures or not isinstance(response, dict):
            return set()
        failed = {f.get("itemIdentifier") for f in response.get("batchItemFailures") or []}
        return every if not failed <= every else failed

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": message.get("MessageAttributes", {}),
            "md5OfBody": message.get("MD5OfBody"),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": self.region,
        }


def run_forever(name: str, poll_once: Callable[[], int], stop: threading.Event, idle_seconds: float) -> None:
    """Polls until `stop` is set; a failed poll is logged and retried, never ends the loop."""
    while not stop.is_set():
        try:
            busy = poll_once() > 0
        except Exception:
            log.exception("%s: poll failed; retrying", name)
            busy = False
        if not busy:
            stop.wait(idle_seconds)
