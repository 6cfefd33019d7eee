"""The fault drill's streams: the stream consumers' handlers as the drill loads them, the tables'
streams read from moto as Lambda's poller reads them, the order in which the fan-out applied
records, and the tally of what the run saw."""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from aws_lambda_powertools import Logger

from tools.local_aws.event_sources import lambda_stream_record, records_after, shard_of
from tools.local_aws.in_process import environment

PAGE_SIZE = 1000  # GetRecords' largest page

# One for the process: Powertools gives a second Logger of the same service the first one's handler
# without its formatter, and that Logger then fails in inject_lambda_context.
HANDLER_LOGGER = Logger(service="aviary-fault-drill-fanout", logger_handler=logging.NullHandler())


class SkippedWaits:
    """Stands in for the time module in the drill's copy of the fan-out: backoff waits are added up,
    not slept, since waiting changes nothing that the drill checks and only makes it slower."""

    def __init__(self) -> None:
        self.waits = 0
        self.seconds = 0.0

    def sleep(self, seconds: float) -> None:
        self.waits += 1
        self.seconds += seconds

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def load_handler(name: str, settings: Mapping[str, str]) -> ModuleType:
    """A handler module, imported afresh as a cold start would, under a name of its own.

    It reads its settings at import; a private copy leaves the module (and whatever settings another
    caller imported it with) alone.
    """
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"{name} is not importable from here")
    with environment(settings):
        private = importlib.util.spec_from_file_location(f"aviary_fault_drill_{name}", spec.origin)
        assert private is not None and private.loader is not None
        module = importlib.util.module_from_spec(private)
        private.loader.exec_module(module)
    return module


def load_fanout(settings: Mapping[str, str], waits: SkippedWaits) -> ModuleType:
    """The fan-out handler module with `settings`; its timeline writer's waits are skipped."""
    module = load_handler("lambda_functions.fanout.handler", settings)
    module.time = waits  # build_service gives the timeline writer time.sleep
    return module


class StreamReader:
    """Reads a table's stream from moto after the last record read, as Lambda's poller does."""

    def __init__(self, streams_client: Any, stream_arn: str, *, region: str) -> None:
        self.streams = streams_client
        self.stream_arn = stream_arn
        self.region = region
        self.shard_id = shard_of(streams_client, stream_arn)
        self.after: str | None = None

    def new_records(self) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        while page := records_after(
            self.streams, self.stream_arn, self.after, limit=PAGE_SIZE, shard_id=self.shard_id
        ):
            records.extend(page)
            self.after = page[-1]["dynamodb"]["SequenceNumber"]
        return [lambda_stream_record(r, stream_arn=self.stream_arn, region=self.region) for r in records]


@dataclass
class Applied:
    """Which tweets' INSERT and tombstone records the handler applied, in the order it applied them."""

    step: int = 0
    last_insert: dict[str, int] = field(default_factory=dict)
    first_tombstone: dict[str, int] = field(default_factory=dict)

    def observe(self, handler: Callable[[dict[str, Any], Any], Any]) -> Callable[[dict[str, Any], Any], Any]:
        def observed(event: dict[str, Any], context: Any) -> Any:
            response = handler(event, context)
            failed = {failure["itemIdentifier"] for failure in (response or {}).get("batchItemFailures", [])}
            for record in event["Records"]:
                if record["dynamodb"]["SequenceNumber"] in failed:
                    continue
                self.step += 1
                new = record["dynamodb"].get("NewImage") or {}
                tweet_id = new.get("tweet_id", {}).get("S")
                if record["eventName"] == "INSERT" and tweet_id:
                    self.last_insert[tweet_id] = self.step
                elif record["eventName"] == "MODIFY" and new.get("deleted", {}).get("BOOL") and tweet_id:
                    self.first_tombstone.setdefault(tweet_id, self.step)
            return response

        return observed

    def inserts_after_delete(self) -> int:
        """Tweets whose INSERT was applied after their tombstone: the order a resurrection needs."""
        return sum(
            1 for tweet_id, step in self.first_tombstone.items() if self.last_insert.get(tweet_id, 0) > step
        )


@dataclass
class Tally:
    """What the run saw, beyond what the stores can tell afterwards."""

    replays: int = 0
    replays_matching: int = 0
    replays_after_lost_answer: int = 0  # a 503 on a write that landed, answered by the retry as a replay
    deletes_before_fanout: int = 0
    deletes_after_fanout: int = 0
    failure_destination: list[dict[str, Any]] = field(default_factory=list)
    redriven: int = 0
    left_after_redrive: list[dict[str, Any]] = field(default_factory=list)
    graph_records: int = 0  # social-graph stream records counted into follower counts
    graph_given_up: int = 0  # of them, those that exhausted their retries (then redriven)
