"""DynamoDB BatchGetItem and BatchWriteItem, with what DynamoDB leaves unprocessed sent again.

A batch call can succeed while leaving part of its request unprocessed (UnprocessedKeys,
UnprocessedItems), usually because a partition is throttled: only that part is sent again, a bounded
number of times with jittered backoff. A throttled call as a whole (a ClientError) is not retried
here: botocore's standard retry mode (aviary.clients.AWS_CONFIG) already retried it, and retrying on
top would multiply its attempts.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

BATCH_GET_MAX_KEYS = 100  # DynamoDB's limit per BatchGetItem
BATCH_WRITE_MAX_ITEMS = 25  # DynamoDB's limit per BatchWriteItem

Item = dict[str, dict[str, Any]]


class BatchIncomplete(Exception):
    """Part of a batch stayed unprocessed after every attempt: DynamoDB is throttling the table, and
    the caller's caller (a client, the event source) should retry later."""

    def __init__(self, operation: str, unprocessed: dict[str, Any], sent: int, attempts: int) -> None:
        self.operation = operation
        self.unprocessed = unprocessed
        left = sum(_count(part) for part in unprocessed.values())
        super().__init__(
            f"{left} of {sent} {operation} requests to {', '.join(sorted(unprocessed))} stayed "
            f"unprocessed after {attempts} attempts (the table is throttled); retry later"
        )


@dataclass(frozen=True)
class UnprocessedRetries:
    """How often a batch is sent (the first time included) while part of it is left unprocessed, and
    the backoff between: full jitter, so batches throttled together do not come back in lockstep."""

    attempts: int = 4
    base_delay: float = 0.05
    max_delay: float = 1.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {self.attempts}")

    def wait(self, retry: int) -> None:
        """Sleep before the `retry`-th resend (1 for the first): up to base_delay * 2**(retry - 1)."""
        self.sleep(self.rng.uniform(0, min(self.max_delay, self.base_delay * 2 ** (retry - 1))))


def _count(part: Any) -> int:
    # BatchGetItem's per-table request is {"Keys": [...], ...}; BatchWriteItem's is a list of requests.
    return len(part["Keys"]) if isinstance(part, dict) else len(part)


def _until_processed(
    send: Callable[..., dict[str, Any]],
    operation: str,
    request: dict[str, Any],
    unprocessed_field: str,
    retries: UnprocessedRetries,
) -> Iterator[dict[str, Any]]:
    """Every response to `request` and to the resends of what each left unprocessed."""
    sent = sum(_count(part) for part in request.values())
    for attempt in range(retries.attempts):
        if attempt:
            retries.wait(attempt)
        response = send(RequestItems=request)
        yield response
        request = {table: part for table, part in response.get(unprocessed_field, {}).items() if _count(part)}
        if not request:
            return
    raise BatchIncomplete(operation, request, sent, retries.attempts)


def batch_get(
    dynamodb: Any, request_items: dict[str, dict[str, Any]], retries: UnprocessedRetries
) -> dict[str, list[Item]]:
    """The items BatchGetItem finds for `request_items` (at most 100 keys in all), by table; keys left
    unprocessed are asked for again. BatchIncomplete if some stay unprocessed."""
    found: dict[str, list[Item]] = {table: [] for table in request_items}
    for response in _until_processed(
        dynamodb.batch_get_item, "BatchGetItem", request_items, "UnprocessedKeys", retries
    ):
        for table, items in response.get("Responses", {}).items():
            found.setdefault(table, []).extend(items)
    return found


def batch_get_items(
    dynamodb: Any,
    table: str,
    keys: list[Item],
    retries: UnprocessedRetries,
    *,
    consistent: bool = False,
) -> list[Item]:
    """The items of `table` at `keys` (at most 100) that exist, in no particular order."""
    request = {table: {"Keys": keys, "ConsistentRead": consistent}}
    return batch_get(dynamodb, request, retries)[table]


def batch_write(
    dynamodb: Any, table: str, requests: list[dict[str, Any]], retries: UnprocessedRetries
) -> None:
    """Apply `requests` (at most 25 PutRequest or DeleteRequest) to `table` with BatchWriteItem; items
    left unprocessed are sent again. BatchIncomplete if some stay unprocessed."""
    for _response in _until_processed(
        dynamodb.batch_write_item, "BatchWriteItem", {table: requests}, "UnprocessedItems", retries
    ):
        pass
