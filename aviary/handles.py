"""Handles: the unique, case-insensitive names people follow each other by, each mapped to a user ID.

Identity is the token's immutable `sub`, the user ID: every key (tweets, edges, timelines, media)
holds it, never a spelling of a name. A handle is claimed once per user, from the username the
user signed in with, lower-cased; a second account whose username differs only by case cannot
claim it (it acts as itself, under its own ID, and has no handle). Both directions are items of
the social-graph table, written in one transaction:

    HANDLE#<handle> / HANDLE   user_id    who holds the handle
    USER#<user id>  / HANDLE   handle     the handle a user holds
"""

from __future__ import annotations

import threading
from typing import Any

from botocore.exceptions import ClientError

from aviary.errors import NotFound
from aviary.keys import user_pk
from aviary.social_graph import cancellation_codes, only_condition_failures

HANDLE_PREFIX = "HANDLE#"
HANDLE_SK = "HANDLE"


class Handles:
    """The handle registry over the social-graph table; the DynamoDB client is injected."""

    def __init__(self, dynamodb_client: Any, social_graph_table: str) -> None:
        self.dynamodb = dynamodb_client
        self.table = social_graph_table
        # Claims this process has seen hold: a user's requests after the first need no write.
        self._held: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def claim(self, user_id: str, handle: str) -> bool:
        """Map `handle` (lower-case) to `user_id` unless another user holds it or this user holds
        another; True when `user_id` holds `handle` afterwards. Claiming again only reads."""
        with self._lock:
            if (user_id, handle) in self._held:
                return True
        held = self.handle_of(user_id)
        if held is not None:
            if held == handle:
                with self._lock:
                    self._held.add((user_id, handle))
            return held == handle
        items = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": {**self._handle_key(handle), "user_id": {"S": user_id}},
                    "ConditionExpression": "attribute_not_exists(pk) OR user_id = :user",
                    "ExpressionAttributeValues": {":user": {"S": user_id}},
                }
            },
            {
                "Put": {
                    "TableName": self.table,
                    "Item": {**self._user_key(user_id), "handle": {"S": handle}},
                    "ConditionExpression": "attribute_not_exists(pk) OR handle = :handle",
                    "ExpressionAttributeValues": {":handle": {"S": handle}},
                }
            },
        ]
        try:
            self.dynamodb.transact_write_items(TransactItems=items)
        except ClientError as error:
            codes = cancellation_codes(error)
            # Either condition: the handle is another user's, or this user holds another handle.
            if not codes or not only_condition_failures(codes, *range(len(codes))):
                raise
            return False
        with self._lock:
            self._held.add((user_id, handle))
        return True

    def user_id_of(self, handle: str, *, field: str = "handle") -> str:
        """The user who holds `handle`; NotFound naming `field` when nobody does."""
        item = self.dynamodb.get_item(TableName=self.table, Key=self._handle_key(handle)).get("Item")
        if item is None:
            raise NotFound(f"No user has the handle {handle!r}; check the spelling.", field=field)
        return item["user_id"]["S"]

    def handle_of(self, user_id: str) -> str | None:
        """The handle `user_id` holds, if any (a user who held one keeps it: it is claimed once)."""
        item = self.dynamodb.get_item(TableName=self.table, Key=self._user_key(user_id)).get("Item")
        return None if item is None else item["handle"]["S"]

    @staticmethod
    def _handle_key(handle: str) -> dict[str, dict[str, str]]:
        return {"pk": {"S": HANDLE_PREFIX + handle}, "sk": {"S": HANDLE_SK}}

    @staticmethod
    def _user_key(user_id: str) -> dict[str, dict[str, str]]:
        return {"pk": {"S": user_pk(user_id)}, "sk": {"S": HANDLE_SK}}
