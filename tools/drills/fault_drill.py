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

The pieces, by concern: fault_injection (the faulty clients and stream), fault_workload (users,
follows, posts and the retrying API client), fault_stream (the consumers, the stream reader and the
tally), fault_checks (the invariants); this module runs them in order.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import boto3
from aws_lambda_powertools import Metrics

from aviary.clients import AWS_CONFIG
from aviary.consumer_settings import EdgeCountsSettings
from aviary.counts import EdgeCounter
from aviary.handles import Handles
from aviary.media import MediaStore
from aviary.media_urls import MediaUrls
from aviary.schema import ALL_TABLES
from aviary.social_graph import SocialGraph
from aviary.timeline_settings import TimelineSettings
from aviary.tweet_service import TweetService
from lambda_functions.api import tweets as tweets_api
from lambda_functions.api import users as users_api
from tools.drills.fault_checks import check_invariants, stored_graph
from tools.drills.fault_injection import FaultInjector, StreamFaults
from tools.drills.fault_stream import (
    HANDLER_LOGGER,
    Applied,
    SkippedWaits,
    StreamReader,
    Tally,
    load_fanout,
    load_handler,
)
from tools.drills.fault_workload import (
    CELEBRITY_THRESHOLD,
    ApiClient,
    Traffic,
    follow_plan,
    largest_timeline,
    plan_posts,
    quiet_logger,
    users_for,
)
from tools.drills.result import DrillResult
from tools.local_aws.counting_client import CountingClient
from tools.local_aws.event_sources import LambdaContext, MappingSettings, StreamDelivery
from tools.local_aws.in_process import MOTO_ACCOUNT, in_process_moto
from tools.local_aws.moto_patches import quicker_moto
from tools.local_aws.tables import create_tables

SCENARIO = "Write path under client faults"
REGION = "us-east-1"
ACCOUNT = MOTO_ACCOUNT
FUNCTION_NAME = "aviary-fanout"
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

DEFAULT_TIMELINE_CAP = 800  # stacks/config.py's default timelineMaxEntries
DEFAULT_SEED = 20_261_121
SDK_ATTEMPTS = int(AWS_CONFIG.retries["total_max_attempts"])
# Tweet IDs and times come from a clock that starts here and moves a millisecond per reading, so a
# seed gives the same IDs, the same sampled timeline trims, and so the same faults, run after run.
CLOCK_START_MS = 1_795_000_000_000

Tamper = Callable[[Any, Mapping[str, str]], None]


class _Discard(io.TextIOBase):
    """Stdout during a run: Powertools prints its metrics once a hundred values pile up, even when
    metrics are disabled, and a drill's output is its counts."""

    def write(self, text: str) -> int:
        return len(text)


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
    # The handlers' Powertools metrics would be EMF lines on stdout; the drill reports counts instead.
    handler_settings = {"AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled", "POWERTOOLS_METRICS_DISABLED": "true"}
    with (
        in_process_moto(ACCOUNT, region=REGION, extra=handler_settings),
        contextlib.redirect_stdout(_Discard()),
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
        self.api = ApiClient(self._routes(), quiet_logger("tools.drills.fault_drill.api"))
        traffic = Traffic(self.api, self.plan_rng, self.tally)
        users = users_for(self.tweets)
        handles = Handles(self.dynamodb, self.tables["social-graph"])
        for user in users:  # signed up: each holds the handle it is followed by
            handles.claim(user, user)
        for follower, followee in follow_plan(users, self.plan_rng):
            self.api.send("POST /users/{handle}/follow", user=follower, expect=200, path={"handle": followee})
        self._count_edges()
        followers, follower_counts = stored_graph(self.dynamodb, self.tables, users)
        posts = plan_posts(self.tweets, users, self.plan_rng)
        largest = largest_timeline(posts, followers, follower_counts)
        handler, context = self._fanout(timeline_cap=max(DEFAULT_TIMELINE_CAP, largest + 1))

        def on_failure(records: list[dict[str, Any]], _condition: str, _invocations: int) -> None:
            self.tally.failure_destination.extend(records)

        delivery = StreamDelivery(handler, FANOUT_MAPPING, on_failure, context=context)
        stream = self.dynamodb.describe_table(TableName=self.tables["tweets"])["Table"]["LatestStreamArn"]
        reader = StreamReader(self.streams, stream, region=REGION)
        stream_records = 0
        for number in sorted({post.round for post in posts}):
            traffic.delete_some_earlier(posts, number)
            for post in posts:
                if post.round == number:
                    traffic.post(post)
            records = reader.new_records()
            stream_records += len(records)
            for batch in self.stream_faults.batches_of(records, FANOUT_MAPPING.batch_size):
                delivery.deliver(batch)
        self._redrive(handler, context)

        if tamper is not None:
            tamper(self.dynamodb, self.tables)
        checks = check_invariants(
            self.dynamodb, self.tables, posts, followers, follower_counts, self.tally, self.applied
        )
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
        settings = EdgeCountsSettings(counts_table=self.tables["counts"]).to_environment()
        module = load_handler("lambda_functions.graph_stream.handler", settings)
        client = CountingClient(self.dynamodb, fault=self.graph_faults, by_operation=True)
        handler = module.build_handler(
            EdgeCounter(client, self.tables["counts"]),
            logger=HANDLER_LOGGER,
            metrics=Metrics(namespace="Aviary", service="graph-stream-drill"),
        )
        arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:aviary-graph-stream"
        context = LambdaContext.for_function({"FunctionName": "aviary-graph-stream", "FunctionArn": arn})
        given_up: list[dict[str, Any]] = []
        delivery = StreamDelivery(handler, FANOUT_MAPPING, lambda r, *_: given_up.extend(r), context=context)
        graph = self.dynamodb.describe_table(TableName=self.tables["social-graph"])["Table"]
        records = StreamReader(self.streams, graph["LatestStreamArn"], region=REGION).new_records()
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
        settings = TimelineSettings(
            timelines_table=self.tables["timelines"],
            tweets_table=self.tables["tweets"],
            social_graph_table=self.tables["social-graph"],
            counts_table=self.tables["counts"],
            celebrity_threshold=CELEBRITY_THRESHOLD,
            max_entries=timeline_cap,
        ).to_environment()
        module = load_fanout(settings, self.waits)
        client = CountingClient(self.dynamodb, fault=self.fanout_faults, by_operation=True)
        handler = module.build_handler(
            module.build_service(client),
            logger=HANDLER_LOGGER,
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
