"""Many requests at once against a local stage, and what each region holds once it settled."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from aviary.counts import Counts, value_of
from aviary.keys import FOLLOWER_PREFIX, FOLLOWS_PREFIX, LIKE_PREFIX, TWEET_PREFIX, USER_PREFIX
from tools.local_runtime.control import LocalStage
from tools.local_runtime.deployment import read_deployment
from tools.local_runtime.stage_http import request

THREADS = 40


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    token: str
    body: dict[str, Any] | None = None
    key: str | None = None


def at_once(base_url: str, calls: Iterable[Call]) -> list[tuple[int | None, Any]]:
    """Every call sent from its own thread, all in flight together; (status, body) of each, in order."""

    def send(call: Call) -> tuple[int | None, Any]:
        headers = {"Authorization": f"Bearer {call.token}"}
        if call.key:
            headers["Idempotency-Key"] = call.key
        data = None
        if call.body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(call.body).encode()
        status, body, _ = request(f"{base_url}{call.path}", call.method, data, headers)
        return status, body

    calls = list(calls)
    with ThreadPoolExecutor(min(THREADS, len(calls))) as pool:
        return list(pool.map(send, calls))


class Settled:
    """What one region holds, read from its tables after `make settle-local`."""

    def __init__(self, stage: LocalStage, region: str) -> None:
        self.region = region
        self.items = {
            table: [json.loads(v) for v in items.values()]
            for table, items in stage.source_items(region).items()
        }
        environment = read_deployment(region, stage.client("lambda", region)).shared_environment()
        self.dynamodb = stage.client("dynamodb", region)
        self.counts = Counts(self.dynamodb, environment["AVIARY_COUNTS_TABLE"])
        self.timelines_table = environment["AVIARY_TIMELINES_TABLE"]

    def graph(self, keep: Callable[[str, str], bool]) -> list[tuple[str, str]]:
        return [
            (item["pk"]["S"], item["sk"]["S"])
            for item in self.items["aviary-social-graph"]
            if keep(item["pk"]["S"], item["sk"]["S"])
        ]

    def likers(self, tweet_id: str) -> set[str]:
        pk = TWEET_PREFIX + tweet_id
        return {
            sk.removeprefix(LIKE_PREFIX)
            for _, sk in self.graph(lambda p, s: p == pk and s.startswith(LIKE_PREFIX))
        }

    def like_count(self, tweet_id: str) -> int:
        counter = self.dynamodb.get_item(TableName=self.counts.counts_table, Key=Counts.likes_key(tweet_id))
        return value_of(counter.get("Item"))

    def follows(self, user: str) -> set[str]:
        pk = USER_PREFIX + user
        return {
            sk.removeprefix(FOLLOWS_PREFIX)
            for _, sk in self.graph(lambda p, s: p == pk and s.startswith(FOLLOWS_PREFIX))
        }

    def followers(self, user: str) -> set[str]:
        pk = USER_PREFIX + user
        return {
            sk.removeprefix(FOLLOWER_PREFIX)
            for _, sk in self.graph(lambda p, s: p == pk and s.startswith(FOLLOWER_PREFIX))
        }

    def tweets(self, author: str) -> dict[str, dict[str, Any]]:
        """The author's tweets by ID, tombstones too."""
        return {i["tweet_id"]["S"]: i for i in self.items["aviary-tweets"] if i["author_id"]["S"] == author}

    def timeline(self, user: str) -> list[str]:
        """The tweet IDs in `user`'s materialised timeline, one per entry."""
        found = self.dynamodb.query(
            TableName=self.timelines_table,
            KeyConditionExpression="user_id = :user",
            ExpressionAttributeValues={":user": {"S": user}},
            ConsistentRead=True,
        )["Items"]
        return [item["tweet_id"]["S"] for item in found]
