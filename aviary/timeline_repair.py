"""Timeline repair: one user's timeline in this region recomputed from source data and made to match.

What a timeline should hold is decided by the source tables alone: the newest live tweets (up to the
cap, within the retention) of the user and of everyone they follow who is not a celebrity
(celebrities are merged on read), each entry exactly as the fan-out writes it. Repair reads that,
reads the entries held, writes the missing or different ones and deletes the rest. It is bounded (a
query per followee and per page of the timeline, at most the cap's worth of writes) and idempotent:
a second run finds nothing to do. Two regions holding the same source data end with the same
timeline, whatever the consumers did or missed (a race, a record sent to the failure queue).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aviary.clients import calls_made
from aviary.fanout import TimelineWriter, timeline_entry
from aviary.follow_timelines import retention_start
from aviary.keys import timeline_entry_key
from aviary.recent_tweets import RecentTweets
from aviary.timeline_settings import TimelineSettings
from aviary.timeline_store import TimelineStore


@dataclass(frozen=True)
class RepairResult:
    user_id: str
    expected: int  # entries the timeline should hold
    written: int  # entries missing or different, written
    deleted: int  # entries that should not be there, deleted
    calls: int  # DynamoDB calls the repair made


class TimelineRepair:
    def __init__(
        self,
        dynamodb_client: Any,
        settings: TimelineSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.dynamodb = dynamodb_client
        self.settings = settings
        self.store = TimelineStore(
            dynamodb_client,
            settings.timelines_table,
            settings.social_graph_table,
            settings.tweets_table,
            settings.counts_table,
            settings.celebrity_threshold,
            sleep=sleep,
        )
        self.recent = RecentTweets(dynamodb_client, settings.tweets_table, sleep=sleep)
        self.writer = TimelineWriter(dynamodb_client, settings.timelines_table, sleep=sleep)
        self.clock = clock

    def expected(self, user: str) -> dict[str, dict[str, Any]]:
        """The entries `user`'s timeline should hold, by entry key."""
        followed = self.store.followed_users(user)
        celebrities = set(self.store.celebrities_among(followed))
        authors = [user, *sorted(set(followed) - celebrities - {user})]
        retention = self.settings.retention_days
        since = retention_start(self.clock(), retention)
        wanted: dict[str, dict[str, Any]] = {}
        for author in authors:
            for tweet, original in self.recent.newest(author, self.settings.max_entries, since=since):
                key = timeline_entry_key(tweet.created_at, tweet.tweet_id)
                wanted[key] = timeline_entry(user, tweet, retention, original=original)
        newest = sorted(wanted, reverse=True)[: self.settings.max_entries]
        return {key: wanted[key] for key in newest}

    def held(self, user: str) -> dict[str, dict[str, Any]]:
        """The entries `user`'s timeline holds, by entry key (strongly consistent)."""
        request: dict[str, Any] = {
            "TableName": self.settings.timelines_table,
            "KeyConditionExpression": "user_id = :user",
            "ExpressionAttributeValues": {":user": {"S": user}},
            "ConsistentRead": True,
        }
        held: dict[str, dict[str, Any]] = {}
        while True:
            response = self.dynamodb.query(**request)
            held.update((item["entry_key"]["S"], item) for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return held
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def repair(self, user: str) -> RepairResult:
        with calls_made(self.dynamodb) as calls:
            expected = self.expected(user)
            held = self.held(user)
            missing = (entry for key, entry in expected.items() if held.get(key) != entry)
            written = self.writer.put_entries(missing)
            deleted = self.writer.delete_entries(
                {"user_id": item["user_id"], "entry_key": item["entry_key"]}
                for key, item in held.items()
                if key not in expected
            )
        return RepairResult(user, len(expected), written, deleted, sum(calls.values()))
