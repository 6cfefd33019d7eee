"""What must hold after a load run has settled, read from every region's tables and APIs.

Nothing accepted is missing anywhere, nothing is doubled, counters agree with the items they count,
every timeline holds exactly the live tweets it should, and the regions hold the same source data.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aviary import naming
from aviary.keys import LIKE_PREFIX, TWEET_PREFIX, tweet_id_from_entry_key
from aviary.schema import SOCIAL_GRAPH, TWEETS
from tools.local_runtime.control import LocalStage
from tools.local_runtime.stage_http import request

EXAMPLES = 5  # examples kept per broken invariant, to say what went wrong


@dataclass
class Findings:
    """One count per invariant (goal: 0 each) and a few examples of each."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    figures: dict[str, int] = field(default_factory=dict)  # worth telling, not invariants

    def add(self, invariant: str, example: str | None = None, n: int = 1) -> None:
        self.counts[invariant] = self.counts.get(invariant, 0) + n
        if example is not None and len(self.examples[invariant]) < EXAMPLES:
            self.examples[invariant].append(example)

    def declare(self, *invariants: str) -> None:
        for invariant in invariants:
            self.counts.setdefault(invariant, 0)

    @property
    def broken(self) -> list[str]:
        return [name for name, count in self.counts.items() if count]


ACCEPTED_MISSING = "accepted posts missing or deleted in a region"
DUPLICATED = "idempotency keys with more than one live tweet"
COUNTERS = "like counts disagreeing with their like items"
TIMELINE_LOST = "timeline entries lost"
TIMELINE_DOUBLED = "timeline entries duplicated"
TIMELINE_STALE = "timeline entries of tweets that are not live"
DIVERGENT = "source items that differ between regions"
TIMELINES_DIVERGENT = "timeline entries that differ between regions"
INTERNAL_ERRORS = "answers of 500"
RESOLVED_DUPLICATES = "posts accepted in two regions for one request, resolved to one"
ALL = (
    ACCEPTED_MISSING, DUPLICATED, COUNTERS, TIMELINE_LOST, TIMELINE_DOUBLED, TIMELINE_STALE, DIVERGENT,
    TIMELINES_DIVERGENT, INTERNAL_ERRORS,
)  # fmt: skip


def _live(item: dict[str, Any] | None) -> bool:
    return item is not None and not item.get("deleted", {}).get("BOOL", False)


def check(
    stage: LocalStage,
    *,
    accepted_posts: list[dict[str, Any]],
    follows: Mapping[str, Iterable[str]],
    token: str,
    timelines_tables: Mapping[str, str],
    internal_errors: int,
) -> Findings:
    """Every invariant over the settled stage; `follows` is the load's follow graph (user -> followees)."""
    findings = Findings()
    findings.declare(*ALL)
    if internal_errors:
        findings.add(INTERNAL_ERRORS, n=internal_errors)
    regions = stage.settings.regions
    source = {
        region: {table: [json.loads(item) for item in items.values()] for table, items in found.items()}
        for region, found in ((region, stage.source_items(region)) for region in regions)
    }
    tweets = {region: _by_key(source[region][naming.table_name(TWEETS)], "tweet_id") for region in regions}

    for post in accepted_posts:
        for region in regions:
            if not _live(tweets[region].get(post["id"])):
                findings.add(ACCEPTED_MISSING, f"{post['id']} ({post['key']}) in {region}")

    texts = {post["text"]: post["key"] for post in accepted_posts}
    for region in regions:
        live_texts = Counter(
            item["text"]["S"] for item in tweets[region].values() if _live(item) and "text" in item
        )
        for text, count in live_texts.items():
            if count > 1 and text in texts:
                findings.add(DUPLICATED, f"{texts[text]}: {count} live tweets in {region}", count - 1)

    _check_counters(stage, source, tweets, token, findings)
    for region in regions:
        _check_timelines(stage, region, tweets[region], follows, timelines_tables[region], findings)
    for difference in stage.differences(list(regions)):
        findings.add(DIVERGENT, difference)
    for difference in stage.timeline_differences(list(regions)):
        findings.add(TIMELINES_DIVERGENT, difference)
    accepted = {post["id"] for post in accepted_posts}
    findings.figures[RESOLVED_DUPLICATES] = sum(
        1 for item in tweets[regions[0]].values() if item.get("duplicate_of", {}).get("S") in accepted
    )
    return findings


def _by_key(items: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {item[key]["S"]: item for item in items}


def _check_counters(
    stage: LocalStage,
    source: dict[str, dict[str, list[dict[str, Any]]]],
    tweets: dict[str, dict[str, dict[str, Any]]],
    token: str,
    findings: Findings,
) -> None:
    """The like count the API shows, in each region, against the like items that region holds."""
    graph = naming.table_name(SOCIAL_GRAPH)
    jobs = []
    for region, tables in source.items():
        likes: Counter[str] = Counter()
        for item in tables[graph]:
            pk, sk = item["pk"]["S"], item["sk"]["S"]
            if pk.startswith(TWEET_PREFIX) and sk.startswith(LIKE_PREFIX):
                likes[pk.removeprefix(TWEET_PREFIX)] += 1
        for tweet_id, count in likes.items():
            if _live(tweets[region].get(tweet_id)):
                jobs.append((region, tweet_id, count))
    api = {region: stage.settings.api_url(region) for region in source}

    def shown(job: tuple[str, str, int]) -> tuple[str, str, int, Any]:
        region, tweet_id, count = job
        url = f"{api[region]}/tweets/{tweet_id}"
        status, body, _ = request(url, headers={"Authorization": f"Bearer {token}"})
        return region, tweet_id, count, body.get("like_count") if status == 200 and body else f"HTTP {status}"

    with ThreadPoolExecutor(8) as pool:
        for region, tweet_id, count, like_count in pool.map(shown, jobs):
            if like_count != count:
                findings.add(COUNTERS, f"{tweet_id} in {region}: like_count {like_count}, like items {count}")


def _check_timelines(
    stage: LocalStage,
    region: str,
    tweets: dict[str, dict[str, Any]],
    follows: Mapping[str, Iterable[str]],
    timelines_table: str,
    findings: Findings,
) -> None:
    """Each load user's materialised timeline: the newest live tweets of themselves and whom they follow."""
    cap = stage.settings.config.timeline_max_entries
    dynamodb = stage.client("dynamodb", region)
    by_author: dict[str, list[str]] = defaultdict(list)
    for tweet_id, item in tweets.items():
        if _live(item):
            by_author[item["author_id"]["S"]].append(tweet_id)
    for user, followees in follows.items():
        # ULIDs sort by time: the newest `cap` are the ones the timeline must hold.
        expected = set(sorted(t for author in {user, *followees} for t in by_author[author])[-cap:])
        entries = Counter(
            tweet_id_from_entry_key(item["entry_key"]["S"])
            for page in dynamodb.get_paginator("query").paginate(
                TableName=timelines_table,
                KeyConditionExpression="user_id = :user",
                ExpressionAttributeValues={":user": {"S": user}},
                ProjectionExpression="entry_key",
            )
            for item in page["Items"]
        )
        for tweet_id in sorted(expected - entries.keys()):
            findings.add(TIMELINE_LOST, f"{tweet_id} not in {user}'s timeline in {region}")
        for tweet_id, count in entries.items():
            if count > 1:
                where = f"{user}'s timeline in {region}"
                findings.add(TIMELINE_DOUBLED, f"{tweet_id} {count}x in {where}", count - 1)
            if not _live(tweets.get(tweet_id)):
                findings.add(TIMELINE_STALE, f"{tweet_id} still in {user}'s timeline in {region}")
