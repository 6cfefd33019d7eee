"""GET /health, without a token: 200 only when this region can serve, that is when every source table
answers a read within a deadline; otherwise 503 naming the tables that did not.

Route 53 health checks of the API's name call it every 10 s from many places, and move clients to
another region when it fails. "The process is up" would say nothing: a region whose tables are
unreachable answers every write with an error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger

from aviary import clients
from aviary.api_settings import ApiHealthSettings
from aviary.schema import IDEMPOTENCY, MEDIA, SOCIAL_GRAPH, SOURCE_OF_TRUTH_TABLES, TWEETS, TableSchema
from aviary.table_probe import unavailable_tables
from lambda_functions.api.http import json_response

logger = Logger(service="api-health")

# Every read together must end well inside Route 53's two seconds, with Lambda's and API Gateway's
# own time on top.
DEADLINE_SECONDS = 1.0


@cache
def _settings() -> ApiHealthSettings:
    return ApiHealthSettings.from_environment(os.environ)


def source_tables(settings: ApiHealthSettings) -> tuple[tuple[str, TableSchema], ...]:
    """(table name, its key schema) of each source table: a read of a missing item needs the key."""
    return (
        (settings.tweets_table, TWEETS),
        (settings.social_graph_table, SOCIAL_GRAPH),
        (settings.idempotency_table, IDEMPOTENCY),
        (settings.media_table, MEDIA),
    )


@cache
def _dynamodb() -> Any:
    return boto3.client("dynamodb", config=clients.PROBE_CONFIG)


# A read that outlives the deadline keeps its thread until its own timeout: room for two rounds.
_pool = ThreadPoolExecutor(max_workers=2 * len(SOURCE_OF_TRUTH_TABLES), thread_name_prefix="health-probe")


@logger.inject_lambda_context(clear_state=True)
def handler(_event: Mapping[str, Any], _context: Any) -> dict[str, Any]:
    settings = _settings()
    failed = unavailable_tables(_dynamodb(), source_tables(settings), _pool, DEADLINE_SECONDS)
    no_store = {"cache-control": "no-store"}
    if failed:
        logger.warning("this region cannot serve", extra={"unavailable_tables": failed})
        body = {"status": "unavailable", "region": settings.region, "unavailable_tables": failed}
        return json_response(503, body, no_store)
    return json_response(200, {"status": "ok", "region": settings.region}, no_store)
