"""Follows reaching timelines: a new follow brings the followee's recent tweets into the follower's
timeline (backfill), an unfollow takes them out, in this region's Timelines table.

Fed by the social graph's stream (local and replicated writes alike), one FOLLOWS# edge per record.
A record is not trusted for what it says happened: the edge is read again (strongly consistent)
and the timeline is made to match what holds now. So a follow, unfollow and follow again, delivered
in any order, twice or late, end in the state of the last change, and every step is idempotent
(entry keys are deterministic). A celebrity followee is merged on read (aviary.timeline_store) and
gets no backfill, as it gets no fan-out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aviary.fanout import TimelineTrimmer, TimelineWriter, entry_key, timeline_entry
from aviary.followers import FollowerDirectory
from aviary.ids import utc_timestamp
from aviary.keys import FOLLOWS_PREFIX, USER_PREFIX
from aviary.recent_tweets import RecentTweets
from aviary.social_graph import SocialGraph
from aviary.timeline_settings import TimelineSettings

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class FollowResult:
    """What one record did: action is "backfill", "remove" or "ignore"."""

    action: str
    written: int = 0
    deleted: int = 0
    trimmed: int = 0
    celebrity: bool = False


IGNORED = FollowResult("ignore")


def follow_edge(record: dict[str, Any]) -> tuple[str, str] | None:
    """(follower, followee) of a record of the FOLLOWS# side of an edge; None for any other item."""
    keys = record.get("dynamodb", {}).get("Keys", {})
    pk, sk = keys.get("pk", {}).get("S", ""), keys.get("sk", {}).get("S", "")
    if not pk.startswith(USER_PREFIX) or not sk.startswith(FOLLOWS_PREFIX):
        return None
    return pk.removeprefix(USER_PREFIX), sk.removeprefix(FOLLOWS_PREFIX)


def retention_start(now: float, retention_days: int) -> str:
    """The created_at of the oldest tweet whose entries have not expired yet."""
    return utc_timestamp(int((now - retention_days * SECONDS_PER_DAY) * 1000))


class FollowTimelines:
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
        self.graph = SocialGraph(dynamodb_client, settings.social_graph_table)
        graph, counts = settings.social_graph_table, settings.counts_table
        self.followers = FollowerDirectory(dynamodb_client, graph, counts)
        self.recent = RecentTweets(dynamodb_client, settings.tweets_table, sleep=sleep)
        self.writer = TimelineWriter(dynamodb_client, settings.timelines_table, sleep=sleep)
        self.trimmer = TimelineTrimmer(
            dynamodb_client, settings.timelines_table, settings.max_entries, writer=self.writer
        )
        self.clock = clock

    def handle(self, record: dict[str, Any]) -> FollowResult:
        edge = follow_edge(record)
        if edge is None:
            return IGNORED
        follower, followee = edge
        if self.graph.is_following(follower, followee, consistent=True):
            return self.backfill(follower, followee)
        return self.remove(follower, followee)

    def backfill(self, follower: str, followee: str) -> FollowResult:
        """The followee's newest live tweets (up to the cap) into the follower's timeline, then the
        timeline trimmed to its cap."""
        if self.followers.follower_count(followee) > self.settings.celebrity_threshold:
            return FollowResult("backfill", celebrity=True)
        retention = self.settings.retention_days
        since = retention_start(self.clock(), retention)
        tweets = self.recent.newest(followee, self.settings.max_entries, since=since)
        written = self.writer.put_entries(
            timeline_entry(follower, tweet, retention, original=original) for tweet, original in tweets
        )
        # A tweet deleted while we copied it: its fan-out may have removed its entries before ours
        # went in (it reads the follower list, which holds this follower already), so look again.
        live = self.recent.still_live([tweet.tweet_id for tweet, _ in tweets])
        deleted = self.writer.delete_entries(
            entry_key(follower, tweet) for tweet, _ in tweets if tweet.tweet_id not in live
        )
        trimmed = self.trimmer.trim(follower)
        return FollowResult("backfill", written=written, deleted=deleted, trimmed=trimmed)

    def remove(self, follower: str, followee: str) -> FollowResult:
        """Every entry of the followee's in the follower's timeline (their tweets and retweets)."""
        keys = self._entry_keys_by(follower, followee)
        return FollowResult("remove", deleted=self.writer.delete_entries(keys))

    def _entry_keys_by(self, user: str, author: str) -> list[dict[str, Any]]:
        request: dict[str, Any] = {
            "TableName": self.settings.timelines_table,
            "KeyConditionExpression": "user_id = :user",
            "FilterExpression": "author_id = :author",
            "ExpressionAttributeValues": {":user": {"S": user}, ":author": {"S": author}},
            "ProjectionExpression": "user_id, entry_key",
            "ConsistentRead": True,
        }
        keys: list[dict[str, Any]] = []
        while True:
            response = self.dynamodb.query(**request)
            keys.extend(response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return keys
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
