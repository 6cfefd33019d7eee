"""Timeline hosts under drill, shared by the host and AZ drills: the region deployed into in-process
moto, a host's settings read from its own user data, timelines written through the real write path
(SocialGraph follows, TweetService posts, FanoutService over the tweets' INSERT records), and one
host run in this process (the real TimelineService and TimelineCache, the cache under a directory
that stands for that host's /data)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import logging
import random
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import EndpointConnectionError

from aviary.counts import Counts
from aviary.errors import ServiceUnavailable
from aviary.fanout import FanoutService, TimelineWriter
from aviary.followers import FollowerDirectory
from aviary.host_settings import TimelineHostSettings
from aviary.keys import timeline_entry_key
from aviary.naming import table_name
from aviary.schema import IDEMPOTENCY
from aviary.social_graph import SocialGraph
from aviary.timeline import TimelinePage, decode_cursor
from aviary.timeline_store import TimelineStore
from aviary.tweet_service import TweetService
from hosts.timeline_service.app import timeline_store
from hosts.timeline_service.cache import TimelineCache
from hosts.timeline_service.service import TimelineService
from stacks.config import DeploymentConfig
from tools.local_aws.assembly import read_assembly
from tools.local_aws.deploy import Deployment, deploy
from tools.local_aws.in_process import aws_client

# The heredoc in which a host's user data writes its settings (stacks/components/host_fleet.py).
ENV_FILE_OPENING = "cat > /etc/aviary/timeline.env <<'ENV'\n"
ENV_FILE_CLOSING = "\nENV"
# Posts are stamped from here on, one second apart, so every run writes the same timelines.
SEED_EPOCH_MS = 1_800_000_000_000
# In-process moto under a thread pool is far slower than DynamoDB; the drills count answers, not
# latency, so a read is given time enough never to be mistaken for an outage.
DRILL_DEADLINE_SECONDS = 10.0
# Past the service's 5 s fresh window: the next read of a cached page asks DynamoDB again.
PAST_FRESH_WINDOW_SECONDS = 60.0
# Far beyond any seeded timeline: a cursor that never ends must stop the drill, not hang it.
MAX_PAGES_PER_TIMELINE = 1_000


class DrillError(RuntimeError):
    """The drill could not be set up (the deployment is not what it expects); the message says what."""


# -- the deployment and its hosts -------------------------------------------------------------


def host_settings(ec2: Any, instance_id: str) -> TimelineHostSettings:
    """The settings `instance_id` boots with: the env file its user data writes, read as the service does."""
    response = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
    encoded = response.get("UserData", {}).get("Value")
    if not encoded:
        raise DrillError(f"Instance {instance_id} has no user data, so it would boot without settings.")
    user_data = base64.b64decode(encoded).decode()
    start = user_data.find(ENV_FILE_OPENING)
    end = user_data.find(ENV_FILE_CLOSING, start + len(ENV_FILE_OPENING))
    if start < 0 or end < 0:
        raise DrillError(f"Instance {instance_id}'s user data writes no /etc/aviary/timeline.env.")
    env_file = user_data[start + len(ENV_FILE_OPENING) : end]
    environ = dict(line.split("=", 1) for line in env_file.splitlines() if "=" in line)
    return TimelineHostSettings.from_environment(environ)


def fleet_group_names(deployment: Deployment) -> list[str]:
    """The Auto Scaling groups of timeline hosts that the deployment created."""
    names = [
        name
        for stack in deployment.stacks.values()
        for name in stack.physical_ids("AWS::AutoScaling::AutoScalingGroup")
    ]
    if not names:
        raise DrillError("The deployment has no Auto Scaling group of timeline hosts.")
    return names


def first_host(ec2: Any, deployment: Deployment) -> str:
    """One running timeline host of the deployment."""
    autoscaling_groups = fleet_group_names(deployment)
    reservations = ec2.describe_instances(
        Filters=[
            {"Name": "tag:aws:autoscaling:groupName", "Values": autoscaling_groups},
            {"Name": "instance-state-name", "Values": ["running"]},
        ]
    )["Reservations"]
    instances = sorted(i["InstanceId"] for r in reservations for i in r["Instances"])
    if not instances:
        raise DrillError("No timeline host is running in the deployment.")
    return instances[0]


def stacks_in_region(cdk_out: Path, region: str) -> list[str]:
    """Every stack the cloud assembly deploys to `region` (deploying them also brings their dependencies)."""
    names = [stack.name for stack in read_assembly(cdk_out) if stack.region == region]
    if not names:
        raise DrillError(f"The cloud assembly in {cdk_out} has no stack in {region}.")
    return names


def deploy_region(cdk_out: Path, config: DeploymentConfig, region: str) -> Deployment:
    """Deploy the local stage of `region` into the active moto; refuses a prod assembly."""
    if not config.is_local:
        raise DrillError("The drills deploy the 'local' stage into moto; synthesize with -c stage=local.")
    if region not in config.region_names:
        raise DrillError(
            f"Region {region} is not one of the configured regions ({', '.join(config.region_names)})."
        )
    return deploy(cdk_out, stacks_in_region(cdk_out, region))


# -- seeded timelines ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeededTimelines:
    """What the write path was given, and so what every user's timeline must show, newest first."""

    expected: dict[str, list[str]]  # handle -> tweet ids
    posts: int
    follows: int
    celebrity: str
    fanned_out_records: int


class _NoMedia:
    """The drill posts text only; a post naming media would be a drill bug."""

    def assert_ready(self, owner: str, media_ids: tuple[str, ...]) -> dict[str, str]:
        raise AssertionError(f"the drill posted media {media_ids} for {owner}")


def seed_timelines(
    settings: TimelineHostSettings, *, users: int, posts_per_user: int, seed: int = 7
) -> SeededTimelines:
    """Follows, posts and fan-out through Aviary's own write path into the deployed tables.

    Each user follows three others and one celebrity; the celebrity's tweets are merged on read,
    everyone else's are fanned out by FanoutService from INSERT records of the tweets table, as the
    fan-out Lambda would receive them. Deterministic: the same arguments write the same timelines.
    """
    if users < 6:
        raise ValueError(f"users must be at least 6 so that each follows three distinct others, not {users}")
    dynamodb = aws_client("dynamodb", settings.region)
    handles = [f"user{i:02d}" for i in range(users)]
    celebrity = "celebrity"
    graph = SocialGraph(dynamodb, settings.social_graph_table)
    followees: dict[str, set[str]] = {handle: set() for handle in [*handles, celebrity]}
    for i, handle in enumerate(handles):
        for step in (1, 2, 5):
            followees[handle].add(handles[(i + step) % users])
        followees[handle].add(celebrity)
    # Each write to a streamed table makes moto try to hand the stream record to the deployed
    # consumer in Docker and print a notice (not a log record) that it cannot; nothing here
    # needs those consumers.
    with contextlib.redirect_stdout(io.StringIO()):
        for follower, followed in followees.items():
            for followee in sorted(followed):
                graph.follow(follower, followee)
    # Stands in for the 10,000+ follows that make a real celebrity; following that many would only
    # slow the drill. The fan-out and the hosts read exactly this count to decide (other users' counts
    # stay below the threshold whether or not they are counted, so the graph stream is not run here).
    dynamodb.put_item(
        TableName=settings.counts_table,
        Item={**Counts.followers_key(celebrity), "n": {"N": str(settings.celebrity_follower_threshold + 1)}},
    )

    clock = iter(range(SEED_EPOCH_MS, SEED_EPOCH_MS + 10**9, 1000))
    rng = random.Random(seed)
    tweets = TweetService(
        dynamodb,
        tweets_table=settings.tweets_table,
        social_graph_table=settings.social_graph_table,
        idempotency_table=table_name(IDEMPOTENCY),
        counts_table=settings.counts_table,
        media_checker=_NoMedia(),
        clock_ms=lambda: next(clock),
        random_bytes=rng.randbytes,
    )
    posted: list[tuple[str, str, str]] = []  # (entry key, author, tweet id)
    # The same for each post; the drill fans out below instead.
    with contextlib.redirect_stdout(io.StringIO()):
        for round_ in range(posts_per_user):
            for author in [*handles, celebrity]:
                tweet, _ = tweets.post(author, f"drill-{author}-{round_:04d}", f"post {round_} by {author}")
                posted.append((timeline_entry_key(tweet.created_at, tweet.tweet_id), author, tweet.tweet_id))

    fanout = FanoutService(
        FollowerDirectory(dynamodb, settings.social_graph_table, settings.counts_table),
        TimelineWriter(dynamodb, settings.timelines_table, sleep=time.sleep),
        settings.celebrity_follower_threshold,
    )
    records = 0
    posted_ids = [tweet_id for _, _, tweet_id in posted]
    for record in _insert_records(settings.region, dynamodb, settings.tweets_table, posted_ids):
        fanout.handle(record)
        records += 1

    newest_first = sorted(posted, reverse=True)
    expected = {
        handle: [tweet_id for _, author, tweet_id in newest_first if author == handle or author in followed]
        for handle, followed in followees.items()
    }
    follows = sum(len(followed) for followed in followees.values())
    return SeededTimelines(expected, len(posted), follows, celebrity, records)


def _insert_records(
    region: str, dynamodb: Any, table: str, tweet_ids: Iterable[str]
) -> Iterator[dict[str, Any]]:
    """The INSERT stream record of each tweet, shaped as the event source mapping hands them to Lambda.

    moto itself hands the stream of a table with a deployed event source mapping to that Lambda,
    which it cannot run without Docker, and drops the records; so the drill reads each item back
    and delivers the record the fan-out function would have received.
    """
    for tweet_id in tweet_ids:
        key = {"tweet_id": {"S": tweet_id}}
        item = dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        if item is None:
            raise DrillError(f"Tweet {tweet_id} was posted but is not in {table}.")
        yield {
            "eventName": "INSERT",
            "eventSource": "aws:dynamodb",
            "awsRegion": region,
            "dynamodb": {"Keys": key, "NewImage": item, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        }


# -- one host, in process --------------------------------------------------------------------------


class FakeClock:
    """The hosts' clock, moved by the drill: freshness decides whether a host asks DynamoDB."""

    def __init__(self, now: float = SEED_EPOCH_MS / 1000 + 3600) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class ReachableClient:
    """A DynamoDB client that fails every call, as an unreachable endpoint does, while `reachable` is off."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.reachable = True

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            if not self.reachable:
                raise EndpointConnectionError(endpoint_url=self._client.meta.endpoint_url)
            return attribute(*args, **kwargs)

        return call


class CountingReader:
    """The store behind a host, counting its reads: each one is a page the cache could not answer."""

    def __init__(self, store: TimelineStore) -> None:
        self.store = store
        self.reads = 0

    def read_page(self, handle: str, limit: int, cursor: str | None) -> TimelinePage:
        self.reads += 1
        return self.store.read_page(handle, limit, cursor)


PageKey = tuple[str, str | None, int]  # (handle, decoded cursor, limit): how the cache keys a page


@dataclass
class Sweep:
    """Every user's timeline read page by page through one host."""

    pages: dict[str, list[str | None]] = field(default_factory=dict)  # JSON text; None: a 503
    keys: list[PageKey] = field(default_factory=list)  # each page served, as the cache keys it
    stale: int = 0  # pages served from the cache because DynamoDB could not answer
    unavailable: int = 0  # 503s
    retry_after: set[int] = field(default_factory=set)  # Retry-After seconds the 503s carried
    misses: int = 0  # reads that went to DynamoDB

    @property
    def served(self) -> int:
        return sum(page is not None for pages in self.pages.values() for page in pages)


class TimelineHost:
    """One timeline host as it runs on EC2: TimelineService over its own cache file under its /data.

    `root` stands for the host's file system: the cache sits at root + the path its settings name,
    so deleting root/data is what losing the instance-store disks does to it.
    """

    def __init__(self, name: str, root: Path, settings: TimelineHostSettings, clock: FakeClock) -> None:
        self.name = name
        self.root = root
        self.cache_path = root / settings.cache_path.lstrip("/")
        self.client = ReachableClient(aws_client("dynamodb", settings.region))
        self.reader = CountingReader(timeline_store(self.client, settings))
        self.cache = TimelineCache(self.cache_path)
        self.service = TimelineService(
            self.reader, self.cache, clock, deadline_seconds=DRILL_DEADLINE_SECONDS
        )
        self.clock = clock

    def sweep(self, handles: Iterable[str], limit: int) -> Sweep:
        """Read every page of every handle's timeline, users concurrently as a load balancer sends them."""
        sweep = Sweep()
        misses_before = self.reader.reads

        async def read_all() -> None:
            await asyncio.gather(*(self._read_timeline(handle, limit, sweep) for handle in handles))

        asyncio.run(read_all())
        sweep.misses = self.reader.reads - misses_before
        return sweep

    async def _read_timeline(self, handle: str, limit: int, sweep: Sweep) -> None:
        pages: list[str | None] = []
        sweep.pages[handle] = pages
        cursor: str | None = None
        while len(pages) < MAX_PAGES_PER_TIMELINE:
            try:
                result = await self.service.timeline(handle, limit, cursor)
            except ServiceUnavailable as error:
                pages.append(None)
                sweep.unavailable += 1
                sweep.retry_after.add(error.retry_after_seconds)
                return
            pages.append(result.page_json)
            sweep.keys.append((handle, cursor, limit))
            sweep.stale += result.stale
            next_cursor = json.loads(result.page_json)["next_cursor"]
            if next_cursor is None:
                return
            cursor = decode_cursor(next_cursor)

    def cached(self, keys: Iterable[PageKey]) -> int:
        """How many of these pages the host's cache holds now."""
        return sum(self.cache.get_json(h, c, n, now=self.clock()) is not None for h, c, n in keys)

    def wait_until_cached(self, keys: Sequence[PageKey], timeout: float = 10.0) -> int:
        """The service writes its cache behind the replies; wait for those writes, return how many landed."""
        deadline = time.monotonic() + timeout
        while (count := self.cached(keys)) < len(keys) and time.monotonic() < deadline:
            time.sleep(0.01)
        return count

    def close(self) -> None:
        self.service.close()
        self.cache.close()

    def lose_disks(self) -> int:
        """Delete the host's /data (the SQLite file and its -wal and -shm siblings); the files deleted."""
        data = self.root / "data"
        files = sum(1 for path in data.rglob("*") if path.is_file()) if data.exists() else 0
        shutil.rmtree(data, ignore_errors=True)
        return files


class _CountFailureWarnings(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        self.count += 1
        return False


@contextmanager
def counting_failure_warnings() -> Iterator[_CountFailureWarnings]:
    """Count, and keep off the console, the warning a host logs for each read DynamoDB failed.

    The drill causes every one of them on purpose; their number is what an operator's log would show.
    """
    counter = _CountFailureWarnings()
    logger = logging.getLogger(TimelineService.__module__)
    logger.addFilter(counter)
    try:
        yield counter
    finally:
        logger.removeFilter(counter)


@contextmanager
def work_directory(work_dir: Path | None) -> Iterator[Path]:
    if work_dir is not None:
        work_dir.mkdir(parents=True, exist_ok=True)
        yield work_dir
        return
    with tempfile.TemporaryDirectory(prefix="aviary-drill-") as temporary:
        yield Path(temporary)
