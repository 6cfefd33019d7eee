"""Who follows an author, and how many: the fan-out's view of the social graph table.

Reads are eventually consistent: a follow made a moment before a post may miss that one
post, which is the same staleness the timeline read path accepts.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

from aviary.keys import FOLLOWER_PREFIX, PROFILE_SK, handle_from_sk, user_pk


class FollowerDirectory:
    """Follower counts (PROFILE item) and follower handles (FOLLOWER# edges) of a user."""

    def __init__(self, dynamodb_client: Any, social_graph_table: str) -> None:
        self.dynamodb = dynamodb_client
        self.social_graph_table = social_graph_table

    def follower_count(self, handle: str) -> int:
        """The count on the user's profile item; a user without one has no followers yet."""
        response = self.dynamodb.get_item(
            TableName=self.social_graph_table,
            Key={"pk": {"S": user_pk(handle)}, "sk": {"S": PROFILE_SK}},
            ProjectionExpression="#followers",
            ExpressionAttributeNames={"#followers": "followers"},
            ConsistentRead=False,
        )
        raw = response.get("Item", {}).get("followers", {}).get("N")
        if raw is None:
            return 0
        try:
            return int(Decimal(raw))
        except (InvalidOperation, ValueError):
            # A malformed counter must not make every post fail; treat the author as ordinary.
            return 0

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
                yield handle_from_sk(item["sk"]["S"])
            if "LastEvaluatedKey" not in response:
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
