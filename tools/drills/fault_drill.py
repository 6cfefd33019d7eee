"""Fault drill: tweets through the real write handlers while DynamoDB calls fail and the stream misbehaves.

Posts, deletes and follows go through the API handlers' routes (lambda_functions/api) over a DynamoDB
client whose attempts are throttled (10 %) or time out (5 %, half of them after DynamoDB applied the
call: the case idempotency keys exist for). By default the client makes AWS_CONFIG's three attempts per
call, as botocore does, so a fault reaches the code when all of them fail; `sdk_attempts=1` lets every
fault through. An API client that gets a 503 retries with the same Idempotency-Key, and some requests
are sent twice on purpose. The tweets table's stream is read from moto after each round of posts and
handed to the real fan-out handler through StreamDelivery with the fan-out mapping's settings; 5 % of
records come again in a later batch, batches are shuffled, and the fan-out's client fails like the
API's. What the mapping gives up on is redriven once, without faults, as an operator would.

Then the invariants are checked against the tables: every accepted tweet is in every recipient's
timeline exactly once, deleted tweets are in none, every replay returned the original response, and
nothing retriable is left in the failure destination.

Units counted in the result: one per (timeline, tweet) pair the drill expects (present once for a live
tweet, absent for a deleted one) and one per deliberate replay. `lost`: entries missing, deleted tweets
still shown, replays that did not return the original, records left in the failure destination.
`duplicated`: entries held more than once, entries in a timeline that should not hold them, tweets
stored more than once or without an accepted request. Everything runs in-process under moto.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import inspect
import io
import itertools
import json
import logging
import math
import os
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError
from moto import mock_aws

from aviary.clients import AWS_CONFIG
from aviary.counts import Counts, EdgeCounter
from aviary.handles import Handles
from aviary.keys import FOLLOWER_PREFIX, tweet_id_from_entry_key, user_id_from_sk, user_pk
from aviary.media import MediaStore
from aviary.media_urls import MediaUrls
from aviary.schema import ALL_TABLES
from aviary.social_graph import SocialGraph
from aviary.tweet_service import TweetService
from lambda_functions.api import tweets as tweets_api
from lambda_functions.api import users as users_api
from lambda_functions.api.http import dispatch
from tests.aws_fakes import FAKE_CREDENTIALS, CountingClient
from tests.moto_tables import create_tables
from tests.unit.lambda_functions.api_events import api_event, jwt_claims
from tools.drills.result import DrillResult
from tools.local_runtime.event_sources import (
    LambdaContext,
    MappingSettings,
    StreamDelivery,
    lambda_stream_record,
)

SCENARIO = "Write path under client faults"
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
FUNCTION_NAME = "aviary-fanout"
FAKE_ENDPOINT = f"https://dynamodb.{REGION}.amazonaws.com"  # named in the timeout errors; never called
MEDIA_BASE_URL = "https://media.aviary.example.com"  # the drill posts text only; tweets still show []

# stacks/components/stream_consumer.py: the event source mapping of every stream consumer.
FANOUT_MAPPING = MappingSettings(
    batch_size=100,
    maximum_retry_attempts=5,
    bisect_on_error=True,
    maximum_record_age_seconds=6 * 60 * 60,
    report_batch_item_failures=True,
)
FANOUT_TIMEOUT_SECONDS = 30  # stacks/components/write_function.py EVENT_TIMEOUT
FANOUT_MEMORY_MB = 512

THROTTLING_CODES = ("ProvisionedThroughputExceededException", "ThrottlingException")
TIMEOUTS_AFTER_APPLY = 0.5  # the share of timeouts that strike after DynamoDB applied the call
# Operations whose request carries a ClientRequestToken that botocore fills in once per call.
TOKEN_OPERATIONS = frozenset({"transact_write_items", "execute_transaction"})

# The workload. Authors post about POSTS_PER_USER tweets each, so every timeline stays far below the
# timeline cap (whose trimming deletes entries on purpose and is not what this drill checks).
POSTS_PER_USER = 50
MIN_USERS = 20
MAX_FOLLOWERS = 5  # an ordinary user's followers: 0 to this many
CELEBRITY_THRESHOLD = 8  # AVIARY_CELEBRITY_THRESHOLD here: above it, tweets are merged on read
CELEBRITY = "celebrity"
POSTS_PER_ROUND = 500  # the stream is read and delivered after each round of posts
MIN_ROUNDS = 4  # so even a small drill has deletes of tweets fanned out in an earlier round
DELETE_BEFORE_FANOUT = 0.01  # posts deleted in the round they were made, before their fan-out
DELETE_AFTER_FANOUT = 0.01  # per round, this share of earlier tweets is deleted
REPLAY_RATE = 0.03  # accepted posts sent again with the same key and body
MAX_ATTEMPTS = 10  # a client's attempts at one request before it gives up
DEFAULT_TIMELINE_CAP = 800  # stacks/config.py's default timelineMaxEntries
DEFAULT_SEED = 20_261_121
SDK_ATTEMPTS = int(AWS_CONFIG.retries["total_max_attempts"])
# Tweet IDs and times come from a clock that starts here and moves a millisecond per reading, so a
# seed gives the same IDs, the same sampled timeline trims, and so the same faults, run after run.
CLOCK_START_MS = 1_795_000_000_000

Tamper = Callable[[Any, Mapping[str, str]], None]


# -- faults --------------------------------------------------------------------------------------------


class FaultInjector:
    """A CountingClient fault: each attempt at a call may be throttled, or time out before or after
    DynamoDB applied it, and the client tries `attempts` times before the code sees the error.

    `attempts` stands for botocore's own retries: with AWS_CONFIG's three, a fault reaches the code only
    when every attempt fails, as under an AWS FIS API fault; with one, every fault reaches the code.
    The SDK's backoff waits and retry quota are left out.
    """

    def __init__(
        self,
        client: Any,
        rng: random.Random,
        *,
        throttle_rate: float,
        timeout_rate: float,
        attempts: int,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {attempts}")
        self.client = client
        self.rng = rng
        self.throttle_rate = throttle_rate
        self.timeout_rate = timeout_rate
        self.attempts = attempts
        self.enabled = True
        self.throttles: Counter[str] = Counter()
        self.timeouts_before: Counter[str] = Counter()
        self.timeouts_after: Counter[str] = Counter()
        self.surfaced: Counter[str] = Counter()  # faults that outlasted every attempt

    def __call__(self, operation: str, kwargs: dict[str, Any]) -> Any:
        if not self.enabled:
            return None
        call = getattr(self.client, operation)
        landed: Any = None  # the answer to an attempt that DynamoDB applied but the client never saw
        error: Exception | None = None
        for _attempt in range(self.attempts):
            error, answer = self._attempt(operation, call, kwargs)
            if answer is not None:
                landed = answer
            if error is None:
                if landed is not None and operation in TOKEN_OPERATIONS:
                    # The SDK sends every attempt with one ClientRequestToken, and DynamoDB answers a
                    # token it has already applied with that first outcome (moto does not).
                    return landed
                return call(**kwargs)
        self.surfaced[operation] += 1
        assert error is not None
        raise error

    def _attempt(
        self, operation: str, call: Callable[..., Any], kwargs: dict[str, Any]
    ) -> tuple[Exception | None, Any]:
        """The fault that strikes this attempt (None: it goes through), and DynamoDB's answer if the
        attempt reached DynamoDB and its answer was lost."""
        roll = self.rng.random()
        if roll < self.throttle_rate:
            self.throttles[operation] += 1
            throttled = ClientError(
                {
                    "Error": {"Code": self.rng.choice(THROTTLING_CODES), "Message": "injected by the drill"},
                    "ResponseMetadata": {"HTTPStatusCode": 400},
                },
                self.client.meta.method_to_api_mapping.get(operation, operation),
            )
            return throttled, None
        if roll >= self.throttle_rate + self.timeout_rate:
            return None, None
        if self.rng.random() >= TIMEOUTS_AFTER_APPLY:
            self.timeouts_before[operation] += 1
            return ConnectTimeoutError(endpoint_url=FAKE_ENDPOINT), None
        self.timeouts_after[operation] += 1
        try:
            answer = call(**kwargs)
        except ClientError:
            answer = None  # DynamoDB refused it; the refusal is lost like any answer
        return ReadTimeoutError(endpoint_url=FAKE_ENDPOINT), answer

    @property
    def timeouts(self) -> int:
        return sum(self.timeouts_before.values()) + sum(self.timeouts_after.values())


# -- the API, as a retrying client sees it ---------------------------------------------------------------


def _quiet_logger(name: str) -> logging.Logger:
    log = logging.getLogger(name)
    log.addHandler(logging.NullHandler())
    log.propagate = False  # the drill prints nothing; its counts are the output
    return log


@dataclass
class ApiClient:
    """Sends payload-2.0 events to route tables and retries a 503 with the very same request."""

    routes: Mapping[str, Any]
    log: logging.Logger
    retried_503: int = 0
    gave_up: int = 0
    unexpected: Counter[int] = field(default_factory=Counter)

    def send(self, route_key: str, *, user: str, expect: int, **event: Any) -> dict[str, Any] | None:
        """The first non-503 response (None if every attempt got a 503); other statuses are counted."""
        # The drill's user IDs are its usernames, so the tables it checks read as its plan does.
        request = api_event(route_key, claims={**jwt_claims(user), "sub": user}, **event)
        for _ in range(MAX_ATTEMPTS):
            response = dispatch(request, self.routes, self.log)
            if response["statusCode"] != 503:
                if response["statusCode"] != expect:
                    self.unexpected[response["statusCode"]] += 1
                return response
            self.retried_503 += 1
        self.gave_up += 1
        return None


# -- fan-out ---------------------------------------------------------------------------------------------

# One for the process: Powertools gives a second Logger of the same service the first one's handler
# without its formatter, and that Logger then fails in inject_lambda_context.
_FANOUT_LOGGER = Logger(service="aviary-fault-drill-fanout", logger_handler=logging.NullHandler())


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


def _load_handler(name: str, settings: Mapping[str, str]) -> ModuleType:
    """A handler module, imported afresh as a cold start would, under a name of its own.

    It reads its settings at import; a private copy leaves the module (and whatever settings another
    caller imported it with) alone.
    """
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"{name} is not importable from here")
    with _environment(settings):
        private = importlib.util.spec_from_file_location(f"aviary_fault_drill_{name}", spec.origin)
        assert private is not None and private.loader is not None
        module = importlib.util.module_from_spec(private)
        private.loader.exec_module(module)
    return module


def _load_fanout(tables: Mapping[str, str], timeline_cap: int, waits: SkippedWaits) -> ModuleType:
    """The fan-out handler module with the drill's settings; its writer's waits are skipped."""
    settings = {
        "AVIARY_TIMELINES_TABLE": tables["timelines"],
        "AVIARY_SOCIAL_GRAPH_TABLE": tables["social-graph"],
        "AVIARY_TWEETS_TABLE": tables["tweets"],
        "AVIARY_COUNTS_TABLE": tables["counts"],
        "AVIARY_CELEBRITY_THRESHOLD": str(CELEBRITY_THRESHOLD),
        "AVIARY_TIMELINE_MAX_ENTRIES": str(timeline_cap),
    }
    module = _load_handler("lambda_functions.fanout.handler", settings)
    module.time = waits  # build_service gives the timeline writer time.sleep
    return module


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
class StreamFaults:
    """Duplicates records into later batches and shuffles batches before StreamDelivery sees them."""

    rng: random.Random
    duplicate_rate: float
    reorder: bool
    duplicates: int = 0
    batches: int = 0
    reordered: int = 0

    def batches_of(self, records: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
        batches = [records[start : start + size] for start in range(0, len(records), size)]
        originals = len(batches)
        for index in range(originals):
            for record in list(batches[index]):
                if self.rng.random() >= self.duplicate_rate:
                    continue
                later = self.rng.randint(index + 1, originals)
                if later == len(batches):
                    batches.append([])
                batches[later].append(record)
                self.duplicates += 1
        order = list(range(len(batches)))
        if self.reorder:
            # AWS keeps a shard's records in order (and, with a parallelization factor, each item's
            # records); shuffling whole batches is harsher than anything the service does.
            self.rng.shuffle(order)
        self.batches += len(order)
        self.reordered += sum(1 for position, index in enumerate(order) if position != index)
        return [batches[index] for index in order]


class StreamReader:
    """Reads a table's stream from moto after the last record read, as Lambda's poller does."""

    def __init__(self, streams_client: Any, stream_arn: str) -> None:
        self.streams = streams_client
        self.stream_arn = stream_arn
        self.after: str | None = None

    def new_records(self) -> list[dict[str, Any]]:
        description = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
        request = {"StreamArn": self.stream_arn, "ShardId": description["Shards"][0]["ShardId"]}
        if self.after is None:
            request["ShardIteratorType"] = "TRIM_HORIZON"
        else:
            request |= {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": self.after}
        iterator = self.streams.get_shard_iterator(**request)["ShardIterator"]
        records: list[dict[str, Any]] = []
        while iterator:
            page = self.streams.get_records(ShardIterator=iterator, Limit=1000)
            if not page["Records"]:
                break
            records.extend(page["Records"])
            iterator = page.get("NextShardIterator")
        if records:
            self.after = records[-1]["dynamodb"]["SequenceNumber"]
        return [lambda_stream_record(r, stream_arn=self.stream_arn, region=REGION) for r in records]


# -- moto ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _environment(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set (or, for None, remove) environment variables for the block, then put them back."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _offline_environment() -> dict[str, str | None]:
    """No call can reach AWS: fake credentials unless some are set (moto answers every call anyway),
    no endpoint override that would send calls past moto, and streams on moto-reachable endpoints."""
    values: dict[str, str | None] = {
        name: None
        for name in os.environ
        if name == "AWS_ENDPOINT_URL" or name.startswith("AWS_ENDPOINT_URL_")
    }
    if not os.environ.get("AWS_ACCESS_KEY_ID"):
        values |= FAKE_CREDENTIALS
    values["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"
    values["AWS_DEFAULT_REGION"] = REGION
    # The handlers' Powertools metrics would be EMF lines on stdout; the drill reports counts instead.
    values["POWERTOOLS_METRICS_DISABLED"] = "true"
    return values


class _Discard(io.TextIOBase):
    """Stdout during a run: Powertools prints its metrics once a hundred values pile up, even when
    metrics are disabled, and a drill's output is its counts."""

    def write(self, text: str) -> int:
        return len(text)


@contextlib.contextmanager
def quicker_moto() -> Iterator[None]:
    """Two shortcuts through moto that change how long it takes, not what it answers.

    moto 5.2.5 deep-copies every table a transaction names (items, stream records and all) so that it
    can roll back, and sorts a whole table on every Query before picking the queried partition. With
    thousands of tweets each post and each fan-out would take tenths of a second. Here a transaction
    saves only what its rollback needs (the items it names, the stream as it was), and a Query of a
    table's own key reads just that partition. tests/drills/test_fault_drill.py compares both with moto.
    """
    from moto.dynamodb import models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    real_copy = models.copy
    real_transact = models.DynamoDBBackend.transact_write_items
    real_query = Table.query
    real_all_items = Table.all_items
    query_signature = inspect.signature(real_query)
    in_flight: list[list[dict[str, Any]]] = []
    partitions: list[tuple[Table, DynamoType]] = []

    def snapshot(table: Table, transact_items: list[dict[str, Any]]) -> Table:
        saved = copy.copy(table)
        if table.range_key_attr is not None:
            saved.items = defaultdict(dict, {hash_: dict(inner) for hash_, inner in table.items.items()})
        else:
            saved.items = defaultdict(dict, table.items)
        for entry in transact_items:
            for kind, operation in entry.items():
                if not isinstance(operation, dict) or operation.get("TableName") != table.name:
                    continue
                key = operation.get("Item") if kind == "Put" else operation.get("Key")
                try:
                    hash_ = DynamoType(key[table.hash_key_attr])
                    range_ = None if table.range_key_attr is None else DynamoType(key[table.range_key_attr])
                except (KeyError, TypeError):
                    continue  # moto refuses such an item itself
                # An update changes its item in place: the saved state needs a copy of its own.
                if range_ is None:
                    if hash_ in saved.items:
                        saved.items[hash_] = real_copy.deepcopy(saved.items[hash_])
                elif range_ in saved.items.get(hash_, {}):
                    saved.items[hash_][range_] = real_copy.deepcopy(saved.items[hash_][range_])
        if table.stream_shard is not None:
            shard = copy.copy(table.stream_shard)
            shard.items = list(table.stream_shard.items)  # records are appended, never changed
            shard.table = saved
            saved.stream_shard = shard
        return saved

    class Copy:
        def __getattr__(self, name: str) -> Any:
            return getattr(real_copy, name)

        def deepcopy(self, value: Any, memo: Any = None) -> Any:
            if in_flight and isinstance(value, Table):
                return snapshot(value, in_flight[-1])
            return real_copy.deepcopy(value, memo)

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        in_flight.append(transact_items)
        try:
            return real_transact(self, transact_items)
        finally:
            in_flight.pop()

    def query(self: Table, *args: Any, **kwargs: Any) -> Any:
        arguments = query_signature.bind(self, *args, **kwargs).arguments
        if arguments.get("index_name") or arguments.get("hash_key") is None:
            return real_query(self, *args, **kwargs)
        partitions.append((self, arguments["hash_key"]))
        try:
            return real_query(self, *args, **kwargs)
        finally:
            partitions.pop()

    def all_items(self: Table) -> list[Any]:
        if not partitions or partitions[-1][0] is not self:
            return real_all_items(self)
        # The partition's items in the order the whole-table listing has them; query keeps no others.
        partition = self.items.get(partitions[-1][1])
        if partition is None:
            return []
        if self.range_key_attr is None:
            return [partition]
        return sorted(partition.values(), key=lambda item: item.range_key)

    models.copy = Copy()
    models.DynamoDBBackend.transact_write_items = transact_write_items
    Table.query = query
    Table.all_items = all_items
    try:
        yield
    finally:
        models.copy = real_copy
        models.DynamoDBBackend.transact_write_items = real_transact
        Table.query = real_query
        Table.all_items = real_all_items


# -- the drill -------------------------------------------------------------------------------------------


@dataclass
class Post:
    index: int
    author: str
    key: str
    text: str
    round: int
    tweet: dict[str, Any] | None = None  # the body of the 201, once accepted
    deleted: bool = False


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


def _users(tweets: int) -> list[str]:
    count = max(MIN_USERS, math.ceil(tweets / POSTS_PER_USER))
    return [CELEBRITY] + [f"user{number:04d}" for number in range(1, count)]


def _follow_plan(users: list[str], rng: random.Random) -> list[tuple[str, str]]:
    """(follower, followee) pairs: 0 to MAX_FOLLOWERS followers each, the celebrity a few over the line."""
    plan = []
    for followee in users:
        others = [user for user in users if user != followee]
        count = CELEBRITY_THRESHOLD + 3 if followee == CELEBRITY else rng.randint(0, MAX_FOLLOWERS)
        plan.extend((follower, followee) for follower in rng.sample(others, min(count, len(others))))
    rng.shuffle(plan)
    return plan


def _stored_graph(
    client: Any, tables: Mapping[str, str], users: list[str]
) -> tuple[dict[str, set[str]], dict[str, int]]:
    """Followers as the social-graph table holds them and their counts as the counts table holds them
    (what the fan-out reads)."""
    followers: dict[str, set[str]] = {}
    counts = Counts(client, tables["counts"])
    for user in users:
        items = _all_pages(
            client.query,
            TableName=tables["social-graph"],
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": user_pk(user)}},
            ConsistentRead=True,
        )
        followers[user] = {
            user_id_from_sk(item["sk"]["S"]) for item in items if item["sk"]["S"].startswith(FOLLOWER_PREFIX)
        }
    return followers, {user: counts.followers(user) for user in users}


def _all_pages(operation: Callable[..., dict[str, Any]], **request: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = operation(**request)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return items
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def run(
    tweets: int = 10_000,
    *,
    seed: int = DEFAULT_SEED,
    throttle_rate: float = 0.10,
    timeout_rate: float = 0.05,
    duplicate_rate: float = 0.05,
    reorder_batches: bool = True,
    sdk_attempts: int = SDK_ATTEMPTS,
    tamper: Tamper | None = None,
) -> DrillResult:
    """Run the drill with `tweets` posts and return its counts; prints nothing.

    The rates are per attempt at a DynamoDB call; `sdk_attempts` is how many attempts the client makes
    before the code sees the fault (AWS_CONFIG's, by default; 1 lets every fault through).
    `tamper(dynamodb_client, tables)`, if given, runs just before the checks: tests use it to break a
    timeline and see the checks notice.
    """
    if tweets < 1:
        raise ValueError(f"tweets must be at least 1, not {tweets}")
    started = time.perf_counter()
    with (
        _environment(_offline_environment()),
        contextlib.redirect_stdout(_Discard()),
        mock_aws(),
        quicker_moto(),
    ):
        details = _Drill(
            tweets,
            seed=seed,
            throttle_rate=throttle_rate,
            timeout_rate=timeout_rate,
            duplicate_rate=duplicate_rate,
            reorder_batches=reorder_batches,
            sdk_attempts=sdk_attempts,
        ).run(tamper)
    survived, lost, duplicated = details.pop("_survived"), details.pop("_lost"), details.pop("_duplicated")
    return DrillResult(
        scenario=SCENARIO,
        injected=(
            f"{throttle_rate:.0%} throttles, {timeout_rate:.0%} timeouts, {duplicate_rate:.0%} duplicate "
            f"deliveries{', reordered batches' if reorder_batches else ''}; "
            f"{sdk_attempts} SDK attempt{'s' if sdk_attempts != 1 else ''} per call"
        ),
        survived=int(survived),
        lost=int(lost),
        duplicated=int(duplicated),
        seconds=round(time.perf_counter() - started, 1),
        details=details,
    )


class _Drill:
    """One run: the tables, the faulty clients, the traffic, the stream delivery and the checks."""

    def __init__(
        self,
        tweets: int,
        *,
        seed: int,
        throttle_rate: float,
        timeout_rate: float,
        duplicate_rate: float,
        reorder_batches: bool,
        sdk_attempts: int,
    ) -> None:
        self.tweets = tweets
        # One generator per concern, so changing one kind of fault leaves the others' draws alone.
        self.plan_rng = random.Random(f"{seed}:plan")
        session = boto3.session.Session(region_name=REGION)
        self.dynamodb = session.client("dynamodb", config=AWS_CONFIG)
        self.streams = session.client("dynamodbstreams", config=AWS_CONFIG)
        faults = {"throttle_rate": throttle_rate, "timeout_rate": timeout_rate, "attempts": sdk_attempts}
        self.api_faults = FaultInjector(self.dynamodb, random.Random(f"{seed}:api"), **faults)
        self.fanout_faults = FaultInjector(self.dynamodb, random.Random(f"{seed}:fanout"), **faults)
        self.graph_faults = FaultInjector(self.dynamodb, random.Random(f"{seed}:graph"), **faults)
        self.stream_faults = StreamFaults(random.Random(f"{seed}:stream"), duplicate_rate, reorder_batches)
        # A stream keeps each item's records in order: the graph's (follow, later unfollow) are
        # duplicated here, never reordered.
        self.graph_stream_faults = StreamFaults(random.Random(f"{seed}:graph-stream"), duplicate_rate, False)
        self.id_rng = random.Random(f"{seed}:ids")
        self.tally = Tally()
        self.applied = Applied()

    def run(self, tamper: Tamper | None) -> dict[str, Any]:
        self.tables = create_tables(self.dynamodb, ALL_TABLES)
        self.api = ApiClient(self._routes(), _quiet_logger("tools.drills.fault_drill.api"))
        users = _users(self.tweets)
        handles = Handles(self.dynamodb, self.tables["social-graph"])
        for user in users:  # signed up: each holds the handle it is followed by
            handles.claim(user, user)
        for follower, followee in _follow_plan(users, self.plan_rng):
            self.api.send("POST /users/{handle}/follow", user=follower, expect=200, path={"handle": followee})
        self._count_edges()
        followers, follower_counts = _stored_graph(self.dynamodb, self.tables, users)
        posts = self._plan_posts(users)
        largest = self._largest_timeline(posts, followers, follower_counts)
        handler, context = self._fanout(timeline_cap=max(DEFAULT_TIMELINE_CAP, largest + 1))

        def on_failure(records: list[dict[str, Any]], _condition: str, _invocations: int) -> None:
            self.tally.failure_destination.extend(records)

        delivery = StreamDelivery(handler, FANOUT_MAPPING, on_failure, context=context)
        stream = self.dynamodb.describe_table(TableName=self.tables["tweets"])["Table"]["LatestStreamArn"]
        reader = StreamReader(self.streams, stream)
        stream_records = 0
        for number in sorted({post.round for post in posts}):
            self._delete_some_earlier(posts, number)
            for post in posts:
                if post.round == number:
                    self._post(post)
            records = reader.new_records()
            stream_records += len(records)
            for batch in self.stream_faults.batches_of(records, FANOUT_MAPPING.batch_size):
                delivery.deliver(batch)
        self._redrive(handler, context)

        if tamper is not None:
            tamper(self.dynamodb, self.tables)
        checks = self._check(posts, followers, follower_counts)
        counts = delivery.counts
        faults = (self.api_faults, self.fanout_faults)
        return {
            "users": len(users),
            "follows": sum(len(f) for f in followers.values()),
            "celebrities": sum(1 for count in follower_counts.values() if count > CELEBRITY_THRESHOLD),
            "posts attempted": len(posts),
            "accepted": sum(1 for post in posts if post.tweet is not None),
            "503s retried": self.api.retried_503,
            "requests given up": self.api.gave_up,
            "unexpected statuses": sum(self.api.unexpected.values()),
            "replays": self.tally.replays,
            "replays matching": self.tally.replays_matching,
            "replays after lost answer": self.tally.replays_after_lost_answer,
            "deletes before fan-out": self.tally.deletes_before_fanout,
            "deletes after fan-out": self.tally.deletes_after_fanout,
            "throttles injected": sum(sum(f.throttles.values()) for f in faults),
            "timeouts injected": sum(f.timeouts for f in faults),
            "timeouts after apply": sum(sum(f.timeouts_after.values()) for f in faults),
            "faults reaching the API": sum(self.api_faults.surfaced.values()),
            "faults reaching the fan-out": sum(self.fanout_faults.surfaced.values()),
            "stream records": stream_records,
            "graph stream records": self.tally.graph_records,
            "graph records redriven": self.tally.graph_given_up,
            "duplicates delivered": self.stream_faults.duplicates,
            "batches": self.stream_faults.batches,
            "batches reordered": self.stream_faults.reordered,
            "backoff waits skipped": self.waits.waits,
            "handler invocations": counts.invocations,
            "retries": counts.retries,
            "bisections": counts.bisections,
            "failure-destination records": len(self.tally.failure_destination),
            "redriven": self.tally.redriven,
            "left in failure destination": len(self.tally.left_after_redrive),
            **checks,
        }

    def _count_edges(self) -> None:
        """The social graph's stream through the graph-stream handler over a failing client, as each
        region counts its followers; what exhausts its retries is delivered once more without faults."""
        settings = {"AVIARY_COUNTS_TABLE": self.tables["counts"]}
        module = _load_handler("lambda_functions.graph_stream.handler", settings)
        client = CountingClient(self.dynamodb, fault=self.graph_faults, by_operation=True)
        handler = module.build_handler(
            EdgeCounter(client, self.tables["counts"]),
            logger=_FANOUT_LOGGER,
            metrics=Metrics(namespace="Aviary", service="graph-stream-drill"),
        )
        arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:aviary-graph-stream"
        context = LambdaContext.for_function({"FunctionName": "aviary-graph-stream", "FunctionArn": arn})
        given_up: list[dict[str, Any]] = []
        delivery = StreamDelivery(handler, FANOUT_MAPPING, lambda r, *_: given_up.extend(r), context=context)
        graph = self.dynamodb.describe_table(TableName=self.tables["social-graph"])["Table"]
        records = StreamReader(self.streams, graph["LatestStreamArn"]).new_records()
        for batch in self.graph_stream_faults.batches_of(records, FANOUT_MAPPING.batch_size):
            delivery.deliver(batch)
        self.tally.graph_records = len(records)
        self.tally.graph_given_up = len(given_up)
        self.graph_faults.enabled = False
        pending = {record["dynamodb"]["SequenceNumber"]: record for record in given_up}
        redrive = StreamDelivery(
            handler, FANOUT_MAPPING, lambda r, *_: self.tally.left_after_redrive.extend(r), context=context
        )
        redrive.deliver([pending[number] for number in sorted(pending, key=int)])

    def _routes(self) -> dict[str, Any]:
        """The tweets and users routes over a DynamoDB client that fails as the drill says."""
        client = CountingClient(self.dynamodb, fault=self.api_faults, by_operation=True)
        service = TweetService(
            client,
            tweets_table=self.tables["tweets"],
            social_graph_table=self.tables["social-graph"],
            idempotency_table=self.tables["idempotency"],
            counts_table=self.tables["counts"],
            media_checker=MediaStore(client, self.tables["media"]),
            clock_ms=itertools.count(CLOCK_START_MS).__next__,
            random_bytes=self.id_rng.randbytes,
        )
        graph = SocialGraph(client, self.tables["social-graph"])
        handles = Handles(client, self.tables["social-graph"])
        return {**tweets_api.routes(service, MediaUrls(MEDIA_BASE_URL)), **users_api.routes(graph, handles)}

    def _fanout(self, *, timeline_cap: int) -> tuple[Callable[[dict[str, Any], Any], Any], Callable[[], Any]]:
        """The fan-out handler over a failing client (watched by `self.applied`), and its contexts."""
        self.waits = SkippedWaits()
        module = _load_fanout(self.tables, timeline_cap, self.waits)
        client = CountingClient(self.dynamodb, fault=self.fanout_faults, by_operation=True)
        handler = module.build_handler(
            module.build_service(client),
            logger=_FANOUT_LOGGER,
            metrics=Metrics(namespace="Aviary", service="fanout-drill"),
        )
        context = LambdaContext.for_function(
            {
                "FunctionName": FUNCTION_NAME,
                "FunctionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTION_NAME}",
                "MemorySize": FANOUT_MEMORY_MB,
                "Timeout": FANOUT_TIMEOUT_SECONDS,
            }
        )
        return self.applied.observe(handler), context

    def _plan_posts(self, users: list[str]) -> list[Post]:
        rounds = max(MIN_ROUNDS, math.ceil(self.tweets / POSTS_PER_ROUND))
        per_round = math.ceil(self.tweets / rounds)
        posts = []
        for index in range(self.tweets):
            author = self.plan_rng.choice(users)
            posts.append(
                Post(
                    index=index,
                    author=author,
                    key=f"drill-{index:06d}-{self.plan_rng.getrandbits(64):016x}",
                    text=f"drill post {index:06d} by {author}",
                    round=index // per_round,
                )
            )
        return posts

    @staticmethod
    def _largest_timeline(
        posts: list[Post], followers: Mapping[str, set[str]], counts: Mapping[str, int]
    ) -> int:
        sizes: Counter[str] = Counter()
        for post in posts:
            sizes[post.author] += 1
            if counts.get(post.author, 0) <= CELEBRITY_THRESHOLD:
                for follower in followers.get(post.author, ()):
                    sizes[follower] += 1
        return max(sizes.values(), default=0)

    # -- traffic --

    def _post(self, post: Post) -> None:
        headers = {"Idempotency-Key": post.key}
        response = self.api.send(
            "POST /tweets", user=post.author, expect=201, body={"text": post.text}, headers=headers
        )
        if response is None or response["statusCode"] != 201:
            return
        post.tweet = json.loads(response["body"])
        if response["headers"].get("idempotent-replayed") == "true":
            self.tally.replays_after_lost_answer += 1
        if self.plan_rng.random() < REPLAY_RATE:
            self.tally.replays += 1
            again = self.api.send(
                "POST /tweets", user=post.author, expect=201, body={"text": post.text}, headers=headers
            )
            if (
                again is not None
                and again["statusCode"] == 201
                and json.loads(again["body"]) == post.tweet
                and again["headers"].get("idempotent-replayed") == "true"
            ):
                self.tally.replays_matching += 1
        if self.plan_rng.random() < DELETE_BEFORE_FANOUT and self._delete(post):
            self.tally.deletes_before_fanout += 1

    def _delete_some_earlier(self, posts: list[Post], number: int) -> None:
        earlier = [p for p in posts if p.round < number and p.tweet is not None and not p.deleted]
        count = round(DELETE_AFTER_FANOUT * len([p for p in posts if p.round == number]))
        for post in self.plan_rng.sample(earlier, min(count, len(earlier))):
            if self._delete(post):
                self.tally.deletes_after_fanout += 1

    def _delete(self, post: Post) -> bool:
        assert post.tweet is not None
        response = self.api.send(
            "DELETE /tweets/{id}", user=post.author, expect=200, path={"id": post.tweet["id"]}
        )
        # A delete that got no answer may still have landed: the check reads the tweets table.
        post.deleted = response is not None and response["statusCode"] == 200
        return post.deleted

    def _redrive(self, handler: Callable[[dict[str, Any], Any], Any], context: Callable[[], Any]) -> None:
        """Deliver what the mapping gave up on once more, in stream order and without faults."""
        pending = {r["dynamodb"]["SequenceNumber"]: r for r in self.tally.failure_destination}
        if not pending:
            return
        self.fanout_faults.enabled = False
        ordered = [pending[number] for number in sorted(pending, key=int)]

        def still_failing(records: list[dict[str, Any]], _condition: str, _invocations: int) -> None:
            self.tally.left_after_redrive.extend(records)

        redrive = StreamDelivery(handler, FANOUT_MAPPING, still_failing, context=context)
        redrive.deliver(ordered)
        self.tally.redriven = len(ordered) - len(self.tally.left_after_redrive)

    # -- checks --

    def _check(
        self, posts: list[Post], followers: Mapping[str, set[str]], counts: Mapping[str, int]
    ) -> dict[str, Any]:
        # Only the attributes the checks read: moto spends most of a large read on serializing it.
        stored = _all_pages(
            self.dynamodb.scan,
            TableName=self.tables["tweets"],
            ProjectionExpression="tweet_id, #text, deleted",
            ExpressionAttributeNames={"#text": "text"},
            ConsistentRead=True,
        )
        entries = [
            entry
            for user in followers
            for entry in _all_pages(
                self.dynamodb.query,
                TableName=self.tables["timelines"],
                KeyConditionExpression="user_id = :user",
                ExpressionAttributeValues={":user": {"S": user}},
                ProjectionExpression="user_id, entry_key",
                ConsistentRead=True,
            )
        ]
        accepted = [post for post in posts if post.tweet is not None]

        # The tweets table: exactly one item per accepted post, with the ID its client was given.
        by_text = {post.text: post for post in posts}
        items_per_post: Counter[int] = Counter()
        tombstones: set[str] = set()
        live: set[str] = set()
        orphans = 0
        for item in stored:
            tweet_id = item["tweet_id"]["S"]
            if item.get("deleted", {}).get("BOOL"):
                tombstones.add(tweet_id)  # a tombstone has no text left to match a post by
                continue
            live.add(tweet_id)
            post = by_text.get(item.get("text", {}).get("S", ""))
            if post is None or post.tweet is None or post.tweet["id"] != tweet_id:
                orphans += 1
            else:
                items_per_post[post.index] += 1
        # A delete whose answer was lost may still have landed: the table says what is deleted.
        deleted = {post.tweet["id"] for post in accepted if post.deleted} | tombstones
        missing_tweets = sum(1 for post in accepted if post.tweet["id"] not in live | deleted)
        tweets_stored_twice = sum(n - 1 for n in items_per_post.values() if n > 1)

        # Timelines: who should hold each tweet, and who does.
        holders: dict[str, Counter[str]] = defaultdict(Counter)
        for item in entries:
            holders[tweet_id_from_entry_key(item["entry_key"]["S"])][item["user_id"]["S"]] += 1
        survived = missing_entries = doubled_entries = deleted_shown = misplaced = 0
        for post in accepted:
            audience = {post.author}
            if counts.get(post.author, 0) <= CELEBRITY_THRESHOLD:
                audience |= followers.get(post.author, set())
            held = holders.pop(post.tweet["id"], Counter())
            if post.tweet["id"] in deleted:
                deleted_shown += len(held)
                survived += len(audience - held.keys())
                continue
            for user in audience:
                copies = held.pop(user, 0)
                if copies == 0:
                    missing_entries += 1
                elif copies == 1:
                    survived += 1
                else:
                    doubled_entries += 1
            misplaced += len(held)  # timelines outside the audience (a celebrity's followers, say)
        misplaced += sum(len(held) for held in holders.values())  # tweets no client was given

        replay_mismatches = self.tally.replays - self.tally.replays_matching
        survived += self.tally.replays_matching
        left = len(self.tally.left_after_redrive)
        count_drift = sum(1 for user, count in counts.items() if count != len(followers.get(user, ())))
        violations = {
            "timeline entries missing": missing_entries,
            "timeline entries doubled": doubled_entries,
            "misplaced entries": misplaced,
            "deleted tweets shown": deleted_shown,
            "replays differing": replay_mismatches,
            "left in failure destination": left,
            "accepted tweets missing": missing_tweets,
            "tweets stored twice": tweets_stored_twice,
            "orphan tweets": orphans,
            "follower counts drifted": count_drift,
        }
        broken = [name for name, count in violations.items() if count]
        return {
            "timeline entries": len(entries),
            "inserts applied after delete": self.applied.inserts_after_delete(),
            **{name: count for name, count in violations.items() if name != "left in failure destination"},
            "invariants": "all held" if not broken else "broken: " + ", ".join(broken),
            "_survived": survived,
            "_lost": missing_entries + deleted_shown + replay_mismatches + left + missing_tweets,
            "_duplicated": doubled_entries + misplaced + tweets_stored_twice + orphans,
        }
