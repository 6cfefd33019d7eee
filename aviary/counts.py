"""Like and follower counts: derived per region from the edges in that region's social graph.

A count kept as a counter in a global table loses increments: two regions add one each to their
copy and last-writer-wins replication keeps one of the two items. A like or follow edge is an item of
its own, so replication never loses one, and a region's copy of the graph ends up holding exactly the
edges every region holds. So each region counts edges as its own stream shows them arrive (INSERT) and
go (REMOVE): a region's count is the number of edges in its copy, and the regions agree once settled.

Counting must happen once per edge whatever the stream redelivers, so each counted edge leaves a
marker item beside its counter, and the marker and the counter change in one transaction: an edge
already counted is not counted again, and an edge not counted is not taken off.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from aviary.keys import FOLLOWER_PREFIX, LIKE_PREFIX, TWEET_PREFIX, USER_PREFIX, tweet_pk, user_pk
from aviary.social_graph import transact_once

# The counter of each kind of counted edge sits in the edge's own partition (the tweet's, the
# followee's) under this sort key; the edges' markers sit beside it under the edges' own keys.
LIKES_COUNTER = "COUNT#LIKES"
FOLLOWERS_COUNTER = "COUNT#FOLLOWERS"
COUNTERS = {LIKE_PREFIX: LIKES_COUNTER, FOLLOWER_PREFIX: FOLLOWERS_COUNTER}


@dataclass(frozen=True)
class CountChange:
    """What one stream record did to the counts: +1, -1 or 0 on `counter` of `pk`."""

    pk: str | None = None
    counter: str | None = None
    delta: int = 0


UNCHANGED = CountChange()


def counter_of(pk: str, sk: str) -> str | None:
    """The counter an edge with this key counts towards, or None for an item nobody counts."""
    for prefix, counter in COUNTERS.items():
        if sk.startswith(prefix):
            expected = TWEET_PREFIX if prefix == LIKE_PREFIX else USER_PREFIX
            return counter if pk.startswith(expected) else None
    return None


class EdgeCounter:
    """Applies social-graph stream records (Lambda's plain dict shape) to this region's counts table."""

    def __init__(self, dynamodb_client: Any, counts_table: str) -> None:
        self.dynamodb = dynamodb_client
        self.counts_table = counts_table

    def handle(self, record: dict[str, Any]) -> CountChange:
        keys = record.get("dynamodb", {}).get("Keys") or {}
        pk, sk = keys.get("pk", {}).get("S"), keys.get("sk", {}).get("S")
        if pk is None or sk is None:
            return UNCHANGED
        counter = counter_of(pk, sk)
        event = record.get("eventName")
        # MODIFY: an edge rewritten (a replica of the same edge landing over it) is still one edge.
        if counter is None or event not in ("INSERT", "REMOVE"):
            return UNCHANGED
        delta = 1 if event == "INSERT" else -1
        return CountChange(pk, counter, delta) if self._count(pk, sk, counter, delta) else UNCHANGED

    def _count(self, pk: str, sk: str, counter: str, delta: int) -> bool:
        """Marker and counter in one transaction; False when the marker says it was done already."""
        marker_key = {"pk": {"S": pk}, "sk": {"S": sk}}
        if delta > 0:
            marker = {"Put": {"Item": marker_key, "ConditionExpression": "attribute_not_exists(pk)"}}
        else:
            marker = {"Delete": {"Key": marker_key, "ConditionExpression": "attribute_exists(pk)"}}
        for operation in marker.values():
            operation["TableName"] = self.counts_table
        update = {
            "Update": {
                "TableName": self.counts_table,
                "Key": {"pk": {"S": pk}, "sk": {"S": counter}},
                "UpdateExpression": "ADD #n :delta",
                "ExpressionAttributeNames": {"#n": "n"},
                "ExpressionAttributeValues": {":delta": {"N": str(delta)}},
            }
        }
        return transact_once(self.dynamodb, [marker, update])


class Counts:
    """Reads this region's counts: a missing counter is zero, and a count never shows below zero."""

    def __init__(self, dynamodb_client: Any, counts_table: str) -> None:
        self.dynamodb = dynamodb_client
        self.counts_table = counts_table

    @staticmethod
    def likes_key(tweet_id: str) -> dict[str, dict[str, str]]:
        return {"pk": {"S": tweet_pk(tweet_id)}, "sk": {"S": LIKES_COUNTER}}

    @staticmethod
    def followers_key(user: str) -> dict[str, dict[str, str]]:
        return {"pk": {"S": user_pk(user)}, "sk": {"S": FOLLOWERS_COUNTER}}

    def followers(self, user: str) -> int:
        item = self.dynamodb.get_item(
            TableName=self.counts_table, Key=self.followers_key(user), ConsistentRead=False
        ).get("Item")
        return value_of(item)


def value_of(item: dict[str, Any] | None) -> int:
    """A counter item's count; zero when absent or unreadable, and never below zero."""
    raw = (item or {}).get("n", {}).get("N")
    if raw is None:
        return 0
    try:
        return max(0, int(Decimal(raw)))
    except (InvalidOperation, ValueError):
        return 0
