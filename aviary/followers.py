"""Who follows an author, and how many: the fan-out's view of the social graph and of this region's counts.

Reads are eventually consistent: a follow made a moment before a post may miss that one
post, which is the same staleness the timeline read path accepts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aviary.counts import Counts
from aviary.keys import FOLLOWER_PREFIX, user_id_from_sk, user_pk


class FollowerDirectory:
    """Follower counts (this region's counts table) and follower handles (FOLLOWER# edges) of a user."""

    def __init__(self, dynamodb_client: Any, social_graph_table: str, counts_table: str) -> None:
        self.dynamodb = dynamodb_client
        self.social_graph_table = social_graph_table
        self.counts = Counts(dynamodb_client, counts_table)

    def follower_count(self, handle: str) -> int:
        """This region's count of the user's followers; a user without one has no followers yet (a
        malformed counter reads as zero: it must not make every post fail)."""
        return self.counts.followers(handle)

    def followers(self, handle: str) -> Iterator[str]:
        """Every follower of `handle`, page by page, so a large audience is never held in memory."""
        request: dict[str, Any] = {
            "TableName": self.social_graph_table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": user_pk(handle)}, ":prefix": {"S": FOLLOWER_PREFIX}},
            "ProjectionExpression": "sk",
            "ConsistentRead": False,
        }
        while True:
            response = self.dynamodb.query(**request)
            for item in response.get("Items", []):
                yield user_id_from_sk(item["sk"]["S"])
            if "LastEvaluatedKey" not in response:
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
