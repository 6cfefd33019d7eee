"""BatchGetItem with its unprocessed keys asked for again: the one batch read every reader shares."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

BATCH_GET_MAX_KEYS = 100  # DynamoDB's limit per BatchGetItem
DEFAULT_ATTEMPTS = 4


class StoreIncomplete(Exception):
    """DynamoDB kept part of a batch unprocessed after every retry (it is throttling us)."""


def batch_get_items(
    dynamodb: Any,
    table: str,
    keys: list[dict[str, Any]],
    *,
    consistent: bool = False,
    attempts: int = DEFAULT_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[dict[str, Any]]:
    """The items at `keys` (at most 100) that exist, asking again for those left unprocessed."""
    request: dict[str, Any] = {"Keys": keys, "ConsistentRead": consistent}
    for attempt in range(attempts):
        response = dynamodb.batch_get_item(RequestItems={table: request})
        yield from response.get("Responses", {}).get(table, [])
        unprocessed = response.get("UnprocessedKeys", {}).get(table)
        if not unprocessed or not unprocessed.get("Keys"):
            return
        request = unprocessed
        if attempt + 1 < attempts:
            # Unprocessed keys mean throttling: back off before asking again.
            sleep(0.05 * 2**attempt)
    raise StoreIncomplete(
        f"{len(request['Keys'])} items of {table} stayed unprocessed after {attempts} BatchGetItem attempts"
    )
