"""Whether DynamoDB tables answer: one eventually consistent GetItem of a key no item has, per table.

Health routes use it (the API's GET /health, the timeline hosts' readiness): "the process is up"
says nothing about whether a region can serve, and a read of a missing key costs half a read unit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

from aviary.schema import TableSchema

log = logging.getLogger(__name__)

# No item has this key: the read returns nothing.
PROBE_KEY = "aviary-health-probe"


def probe_key(schema: TableSchema) -> dict[str, dict[str, str]]:
    """A key of the table's own shape that no item has."""
    key = {schema.partition_key.name: {schema.partition_key.type: PROBE_KEY}}
    if schema.sort_key is not None:
        key[schema.sort_key.name] = {schema.sort_key.type: PROBE_KEY}
    return key


def unavailable_tables(
    dynamodb: Any,
    tables: Sequence[tuple[str, TableSchema]],
    pool: ThreadPoolExecutor,
    deadline_seconds: float,
) -> list[str]:
    """The tables that did not answer one GetItem within the deadline (all read at once).

    `dynamodb` should be a client that tries once with short timeouts (clients.PROBE_CONFIG): a read
    that outlives the deadline keeps its pool thread until its own timeout ends it.
    """
    reads = {
        pool.submit(dynamodb.get_item, TableName=name, Key=probe_key(schema), ConsistentRead=False): name
        for name, schema in tables
    }
    done, _late = wait(reads, timeout=deadline_seconds)
    failed = []
    for read, name in reads.items():
        if read not in done:
            log.warning("health probe: %s did not answer within %.1f s", name, deadline_seconds)
            failed.append(name)
        elif read.exception() is not None:
            log.warning("health probe: %s failed: %s", name, read.exception())
            failed.append(name)
    return failed
