"""Write-path costs: DynamoDB calls to post and fan out one tweet, and the Lambda handlers' cold imports.

(a) runs under moto with a client that counts calls per operation; (b) imports each handler module
in fresh interpreters (median of several runs) beside a bare `import boto3` from the same run.
Bounded: a fixed number of runs, each import under a timeout, no network (endpoints point at a
closed local port).

    python -m tools.bench_handlers [--followers 1 100 10000] [--runs 5] [--skip-fanout] [--skip-imports]
"""

from __future__ import annotations

import argparse
import math
import os
import re
import statistics
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
REGION = "us-east-1"
THRESHOLD = 10_000  # stacks/config.py's default celebrityFollowerThreshold
MAX_ENTRIES = 800  # stacks/config.py's default timelineMaxEntries
BATCH = 25
IMPORT_TIMEOUT_SECONDS = 60
CLOSED_ENDPOINT = "http://127.0.0.1:9"  # the discard port: any AWS call at import fails at once


# -- (a) DynamoDB calls per post ---------------------------------------------------------------------


class CountingClient:
    """Passes every call to the real client and counts it by operation name."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(**kwargs: Any) -> Any:
            self.calls[name] += 1
            return attribute(**kwargs)

        return call


class _AnyMedia:
    def assert_ready(self, owner: str, media_ids: tuple[str, ...]) -> dict[str, str]:
        return {}


def _seed(client: Any, tables: dict[str, str], author: str, followers: int, *, edges: bool) -> None:
    """`followers` FOLLOWER# edges of `author` (only the side the fan-out reads) and their count."""
    from aviary.counts import Counts
    from aviary.keys import follower_sk, user_pk

    if edges:
        requests = [
            {"PutRequest": {"Item": {"pk": {"S": user_pk(author)}, "sk": {"S": follower_sk(f"f{i:06d}")}}}}
            for i in range(followers)
        ]
        for start in range(0, len(requests), BATCH):
            client.batch_write_item(RequestItems={tables["social-graph"]: requests[start : start + BATCH]})
    client.put_item(
        TableName=tables["counts"], Item={**Counts.followers_key(author), "n": {"N": str(followers)}}
    )


def _post(client: Any, tables: dict[str, str], author: str) -> tuple[Any, Counter[str] | None]:
    """The tweet to fan out and the calls TweetService.post made (None when it is not available)."""
    from aviary.tweets import Tweet

    try:
        from aviary.tweet_service import TweetService
    except ImportError:
        from aviary.ids import generate_ulid

        tweet_id = generate_ulid()
        return Tweet(tweet_id, author, Tweet.created_at_of(tweet_id), "bench tweet"), None
    counting = CountingClient(client)
    service = TweetService(
        counting,
        tweets_table=tables["tweets"],
        social_graph_table=tables["social-graph"],
        idempotency_table=tables["idempotency"],
        counts_table=tables["counts"],
        media_checker=_AnyMedia(),
    )
    tweet, _created = service.post(author, f"bench-{author}", "bench tweet")
    return tweet, counting.calls


def fanout_costs(follower_counts: Iterable[int]) -> list[dict[str, Any]]:
    """One row per audience size: calls by operation for the post and for its fan-out."""
    os.environ.pop("AWS_ENDPOINT_URL", None)  # moto must see the calls, not a local server
    import boto3
    from moto import mock_aws

    from aviary.clients import AWS_CONFIG
    from aviary.fanout import FanoutService, LiveTweets, TimelineTrimmer, TimelineWriter
    from aviary.followers import FollowerDirectory
    from aviary.schema import ALL_TABLES
    from tools.local_aws.tables import create_tables

    cases = [(count, False) for count in follower_counts] + [(THRESHOLD + 1, True)]
    rows = []
    for index, (followers, celebrity) in enumerate(cases):
        with mock_aws():
            client = boto3.client("dynamodb", region_name=REGION, config=AWS_CONFIG)
            tables = create_tables(client, ALL_TABLES)
            author = f"author{index}"
            # A celebrity's edges are never read, so only the profile count is seeded.
            _seed(client, tables, author, followers, edges=not celebrity)
            tweet, post_calls = _post(client, tables, author)
            counting = CountingClient(client)
            # The trimmer's reads go through a client of their own, so its Queries are told apart from
            # the follower pages; its deletes go through the shared writer (none here: timelines start empty).
            trim_counting = CountingClient(client)
            writer = TimelineWriter(counting, tables["timelines"], sleep=lambda _s: None)
            trimmer = TimelineTrimmer(trim_counting, tables["timelines"], MAX_ENTRIES, writer=writer)
            # As the handler builds it: the insert's liveness check is one GetItem of the tweet.
            service = FanoutService(
                FollowerDirectory(counting, tables["social-graph"], tables["counts"]),
                writer,
                THRESHOLD,
                trimmer=trimmer,
                live_tweets=LiveTweets(counting, tables["tweets"]),
            )
            result = service.handle({"eventName": "INSERT", "dynamodb": {"NewImage": tweet.to_item()}})
            audience = 1 if celebrity else followers + 1
            rows.append(
                {
                    "followers": followers,
                    "celebrity": celebrity,
                    "post": None if post_calls is None else sum(post_calls.values()),
                    "post_transactions": None if post_calls is None else post_calls["transact_write_items"],
                    "get_item": counting.calls["get_item"],
                    "query": counting.calls["query"],
                    "batch_write_item": counting.calls["batch_write_item"],
                    "other": sum(counting.calls.values())
                    - counting.calls["get_item"]
                    - counting.calls["query"]
                    - counting.calls["batch_write_item"],
                    "trim_query": trim_counting.calls["query"],
                    "trim_other": sum(trim_counting.calls.values()) - trim_counting.calls["query"],
                    "expected_trim_query": audience / trimmer.sample_every,
                    "entries": result.written,
                }
            )
    return rows


def steady_state_trim() -> dict[str, Any]:
    """The calls of one sampled trim of a timeline that has grown one sampling interval past the cap."""
    os.environ.pop("AWS_ENDPOINT_URL", None)
    import boto3
    from moto import mock_aws

    from aviary.clients import AWS_CONFIG
    from aviary.fanout import TimelineTrimmer, TimelineWriter, timeline_entry
    from aviary.ids import generate_ulid
    from aviary.schema import TIMELINES
    from aviary.tweets import Tweet
    from tools.local_aws.tables import create_tables

    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION, config=AWS_CONFIG)
        table = create_tables(client, [TIMELINES])["timelines"]
        seeder = TimelineWriter(client, table, sleep=lambda _s: None)
        probe = TimelineTrimmer(client, table, MAX_ENTRIES, writer=seeder)
        stored = MAX_ENTRIES + probe.sample_every  # the mean growth between two sampled writes
        tweets = []
        for _ in range(stored):
            tweet_id = generate_ulid()
            tweets.append(Tweet(tweet_id, "someone", Tweet.created_at_of(tweet_id), "bench tweet"))
        seeder.put_entries(timeline_entry("reader", tweet) for tweet in tweets)
        counting = CountingClient(client)
        writer = TimelineWriter(counting, table, sleep=lambda _s: None)
        trimmer = TimelineTrimmer(counting, table, MAX_ENTRIES, writer=writer)
        deleted = trimmer.trim("reader")
        return {
            "stored": stored,
            "sample_every": trimmer.sample_every,
            "query": counting.calls["query"],
            "batch_write_item": counting.calls["batch_write_item"],
            "deleted": deleted,
        }


def print_fanout(rows: list[dict[str, Any]], trim: dict[str, Any] | None = None) -> None:
    print(
        f"(a) DynamoDB calls to post one tweet and fan it out (moto; celebrity threshold {THRESHOLD:,}, "
        f"timeline cap {MAX_ENTRIES:,})"
    )
    header = (
        f"{'followers':>18} {'post':>5} {'GetItem':>8} {'Query':>6} {'BatchWrite':>11} {'other':>6} "
        f"{'trim Q':>7} {'E[trim]':>7} {'total':>6} {'floor':>6} {'entries':>8}"
    )
    print(header)
    print("-" * len(header))
    missing_post = False
    for row in rows:
        post = row["post"]
        if post is None:
            missing_post, post = True, 1
        total = post + row["get_item"] + row["query"] + row["batch_write_item"] + row["other"]
        total += row["trim_query"] + row["trim_other"]
        # The floor counts the post's own TransactWriteItems and one 25-item batch per 25 followers.
        floor = 1 if row["celebrity"] else 1 + math.ceil(row["followers"] / BATCH)
        label = f"{row['followers']:,}" + (" (celebrity)" if row["celebrity"] else "")
        print(
            f"{label:>18} {post:>5} {row['get_item']:>8} {row['query']:>6} {row['batch_write_item']:>11} "
            f"{row['other'] + row['trim_other']:>6} {row['trim_query']:>7} "
            f"{row['expected_trim_query']:>7.1f} {total:>6} {floor:>6} {row['entries']:>8}"
        )
    print(
        "post = TweetService.post's calls (one TransactWriteItems: tweet + idempotency record); "
        "BatchWrite covers the author's own timeline too, so it is ceil((F+1)/25)."
    )
    print(
        "Query = follower pages; trim Q = timeline-cap trims, one Query per sampled recipient "
        "(E[trim] = recipients / sample_every; the tweet ID is random, so trim Q varies run to run). "
        "total includes trim Q; floor does not."
    )
    if trim is not None:
        print(
            f"One sampled trim of a full timeline ({MAX_ENTRIES:,} + {trim['sample_every']} entries, "
            f"keys only): {trim['query']} Query, {trim['batch_write_item']} BatchWrite, "
            f"{trim['deleted']} deleted (it reads {trim['stored']:,} items). The trims above found empty "
            f"timelines: in steady state each trim Q also brings about {trim['batch_write_item']} BatchWrite."
        )
    if missing_post:
        print("aviary.tweet_service is not importable here: the post is counted as 1 transaction.")


# -- (b) cold imports -----------------------------------------------------------------------------------


def handler_modules() -> list[str]:
    """Dotted names of every handler.py under lambda_functions/ and every lambda_functions/api/*.py."""
    root = PROJECT / "lambda_functions"
    paths = set(root.rglob("handler.py"))
    paths.update(p for p in (root / "api").glob("*.py") if p.name != "__init__.py")
    names = []
    for path in sorted(paths):
        if "__pycache__" in path.parts:
            continue
        names.append(".".join(path.relative_to(PROJECT).with_suffix("").parts))
    return names


def _dummy(name: str) -> str:
    if name.endswith("_URL"):
        return "https://bench.example.com"
    if re.search(r"(THRESHOLD|DAYS|ENTRIES)$", name):
        return "10"
    return "bench-" + name.removeprefix("AVIARY_").lower().replace("_", "-")


def import_environment() -> dict[str, str]:
    """A minimal environment in which the handlers' settings exist and no AWS call can leave the host:
    every variable the Lambda runtimes' settings classes read, with a value their rules accept."""
    from aviary.api_settings import ApiHealthSettings, ApiMediaSettings, ApiTweetsSettings, ApiUsersSettings
    from aviary.consumer_settings import DuplicatePostsSettings, EdgeCountsSettings, MediaProcessorSettings
    from aviary.timeline_settings import TimelineSettings

    runtimes = (
        ApiTweetsSettings,
        ApiUsersSettings,
        ApiMediaSettings,
        ApiHealthSettings,
        TimelineSettings,
        EdgeCountsSettings,
        DuplicatePostsSettings,
        MediaProcessorSettings,
    )
    env = {name: _dummy(name) for runtime in runtimes for name in runtime.variables()}
    env.update(
        {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(PROJECT),
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_ENDPOINT_URL": CLOSED_ENDPOINT,
            "AWS_EC2_METADATA_DISABLED": "true",
            "POWERTOOLS_METRICS_NAMESPACE": "Aviary",
        }
    )
    return env


def _timed(statement: str, env: dict[str, str]) -> float | str:
    """Seconds `statement` takes in a fresh interpreter, or the error that stopped it."""
    probe = f"import time\nstart = time.perf_counter()\n{statement}\nprint(time.perf_counter() - start)\n"
    try:
        done = subprocess.run(
            [sys.executable, "-c", probe],
            cwd=PROJECT,
            env=env,
            capture_output=True,
            text=True,
            timeout=IMPORT_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired:
        return f"timed out after {IMPORT_TIMEOUT_SECONDS} s"
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return lines[-1] if lines else f"exit status {done.returncode}"
    return float(done.stdout.strip().splitlines()[-1])


def import_times(runs: int) -> list[tuple[str, float | str]]:
    """Median import time per module (first row: bare boto3), runs interleaved so drift hits all alike."""
    env = import_environment()
    statements = {
        "import boto3 (baseline)": "import boto3",
        "boto3 + dynamodb client": "import boto3\nboto3.client('dynamodb')",
        **{module: f"import {module}" for module in handler_modules()},
    }
    samples: dict[str, list[float]] = {name: [] for name in statements}
    errors: dict[str, str] = {}
    for _ in range(runs):
        for name, statement in statements.items():
            if name in errors:
                continue
            outcome = _timed(statement, env)
            if isinstance(outcome, str):
                errors[name] = outcome
            else:
                samples[name].append(outcome)
    return [(name, errors.get(name) or statistics.median(samples[name])) for name in statements]


def print_imports(rows: list[tuple[str, float | str]], runs: int) -> None:
    print(f"(b) Cold import in a fresh interpreter (median of {runs}), against a bare `import boto3`")
    baseline = rows[0][1]
    width = max(len(name) for name, _ in rows)
    header = f"{'module':<{width}} {'ms':>8} {'x boto3':>8}"
    print(header)
    print("-" * len(header))
    for name, outcome in rows:
        if isinstance(outcome, str):
            print(f"{name:<{width}} import failed: {outcome}")
            continue
        ratio = f"{outcome / baseline:.2f}" if isinstance(baseline, float) else "n/a"
        print(f"{name:<{width}} {outcome * 1000:>8.0f} {ratio:>8}")
    print("A handler that builds its DynamoDB client at import pays the second row's client cost there.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--followers", type=int, nargs="+", default=[1, 100, 10_000])
    parser.add_argument("--runs", type=int, default=11, help="fresh interpreters per module (median)")
    parser.add_argument("--skip-fanout", action="store_true")
    parser.add_argument("--skip-imports", action="store_true")
    args = parser.parse_args(argv)
    if not args.skip_fanout:
        print_fanout(fanout_costs(args.followers), steady_state_trim())
    if not args.skip_fanout and not args.skip_imports:
        print()
    if not args.skip_imports:
        print_imports(import_times(max(1, args.runs)), max(1, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
