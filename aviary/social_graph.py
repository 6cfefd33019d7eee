"""Follows and unfollows: both edges of a follow, changed together.

A follow is stored from both sides (FOLLOWS# under the follower, FOLLOWER# under the followee) in one
TransactWriteItems, and a repeat of it changes nothing. Follower counts, which decide celebrity
status (hybrid fan-out), are counted by each region from the FOLLOWER# edges it holds (aviary.counts).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from aviary.errors import ValidationError
from aviary.keys import follower_sk, follows_sk, user_pk

CONDITIONAL_CHECK_FAILED = "ConditionalCheckFailed"


def cancellation_codes(error: ClientError) -> list[str] | None:
    """The per-item reason codes of a cancelled transaction ("None" for items that passed), else None."""
    if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return None
    reasons = error.response.get("CancellationReasons") or []
    return [reason.get("Code") or "None" for reason in reasons]


def only_condition_failures(codes: list[str], *positions: int) -> bool:
    """Whether the transaction failed only because of the conditions at `positions` (and no other cause)."""
    failed = {index for index, code in enumerate(codes) if code != "None"}
    return (
        bool(failed)
        and failed <= set(positions)
        and all(codes[index] == CONDITIONAL_CHECK_FAILED for index in failed)
    )


def transact_once(dynamodb_client: Any, items: list[dict[str, Any]]) -> bool:
    """Run the transaction; False when only its first item's condition failed: the change it makes
    (an edge, a marker) was made before, so a repeat changes nothing."""
    try:
        dynamodb_client.transact_write_items(TransactItems=items)
    except ClientError as error:
        codes = cancellation_codes(error)
        if codes is not None and only_condition_failures(codes, 0):
            return False
        raise
    return True


class SocialGraph:
    """Who follows whom, in the social-graph table; the boto3 DynamoDB client is injected."""

    def __init__(self, dynamodb_client: Any, table_name: str) -> None:
        self._dynamodb = dynamodb_client
        self._table = table_name

    def follow(self, follower: str, followee: str) -> bool:
        """Make `follower` follow `followee`; False when they already did (nothing changed)."""
        self._refuse_self(follower, followee)
        items = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": self._key(user_pk(follower), follows_sk(followee)),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {"Put": {"TableName": self._table, "Item": self._key(user_pk(followee), follower_sk(follower))}},
        ]
        return self._transact(items)

    def unfollow(self, follower: str, followee: str) -> bool:
        """Stop `follower` following `followee`; False when they did not (nothing changed)."""
        self._refuse_self(follower, followee)
        items = [
            {
                "Delete": {
                    "TableName": self._table,
                    "Key": self._key(user_pk(follower), follows_sk(followee)),
                    "ConditionExpression": "attribute_exists(pk)",
                }
            },
            {
                "Delete": {
                    "TableName": self._table,
                    "Key": self._key(user_pk(followee), follower_sk(follower)),
                }
            },
        ]
        return self._transact(items)

    def is_following(self, follower: str, followee: str, *, consistent: bool = False) -> bool:
        """Whether `follower` follows `followee` (an eventually consistent read unless `consistent`)."""
        response = self._dynamodb.get_item(
            TableName=self._table,
            Key=self._key(user_pk(follower), follows_sk(followee)),
            ProjectionExpression="pk",
            ConsistentRead=consistent,
        )
        return "Item" in response

    @staticmethod
    def _refuse_self(follower: str, followee: str) -> None:
        if follower == followee:
            raise ValidationError(
                f"You cannot follow or unfollow yourself ({follower}); name another user's handle.",
                field="handle",
            )

    @staticmethod
    def _key(pk: str, sk: str) -> dict[str, dict[str, str]]:
        return {"pk": {"S": pk}, "sk": {"S": sk}}

    def _transact(self, items: list[dict[str, Any]]) -> bool:
        return transact_once(self._dynamodb, items)
