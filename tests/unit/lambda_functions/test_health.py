"""GET /health: 200 only when every source table of the region answers a read within the deadline."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from moto import mock_aws

from aviary import clients, table_probe
from aviary.api_settings import ApiHealthSettings
from aviary.naming import table_name
from aviary.schema import MEDIA, SOCIAL_GRAPH, SOURCE_OF_TRUTH_TABLES, TWEETS
from aviary.settings import SettingsError
from lambda_functions.api import health
from tests.unit.lambda_functions.handler_environment import HANDLER_ENVIRONMENT
from tests.unit.lambda_functions.lambda_context import lambda_context
from tools.local_aws.api_events import REGION
from tools.local_aws.tables import create_table

SOURCE_NAMES = [table_name(schema) for schema in SOURCE_OF_TRUTH_TABLES]


@pytest.fixture
def moto_region(monkeypatch):
    """The handler's environment as the template gives it, its caches empty, and moto for AWS."""
    for name, value in HANDLER_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_REGION", REGION)
    health._settings.cache_clear()
    health._dynamodb.cache_clear()
    with mock_aws():
        yield boto3.client("dynamodb", region_name=REGION)
    health._settings.cache_clear()
    health._dynamodb.cache_clear()


def call_handler() -> tuple[int, dict[str, Any], dict[str, str]]:
    response = health.handler(
        {"routeKey": "GET /health", "rawPath": "/health"}, lambda_context("aviary-api-health")
    )
    return response["statusCode"], json.loads(response["body"]), response["headers"]


def test_every_source_table_answering_is_200_with_the_region(moto_region):
    for schema in SOURCE_OF_TRUTH_TABLES:
        create_table(moto_region, schema)
    status, body, headers = call_handler()
    assert (status, body) == (200, {"status": "ok", "region": REGION})
    assert headers["cache-control"] == "no-store"
    assert headers["content-type"] == "application/json"


def test_a_missing_table_is_503_naming_it_and_only_it(moto_region):
    for schema in SOURCE_OF_TRUTH_TABLES:
        if schema is not MEDIA:
            create_table(moto_region, schema)
    status, body, _ = call_handler()
    assert status == 503
    assert body == {"status": "unavailable", "region": REGION, "unavailable_tables": [table_name(MEDIA)]}


def test_no_tables_at_all_names_every_one(moto_region):
    status, body, _ = call_handler()
    assert status == 503
    assert body["unavailable_tables"] == SOURCE_NAMES


class SlowTable:
    """A DynamoDB client whose reads of one table take longer than the deadline; it records every read."""

    def __init__(self, slow: str, delay: float) -> None:
        self.slow, self.delay = slow, delay
        self.reads: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def get_item(self, **request: Any) -> dict[str, Any]:
        with self._lock:
            self.reads.append(request)
        if request["TableName"] == self.slow:
            time.sleep(self.delay)
        return {}


def test_a_table_slower_than_the_deadline_is_named_and_the_answer_is_not_late():
    client = SlowTable(table_name(SOCIAL_GRAPH), delay=2.0)
    tables = tuple((table_name(s), s) for s in SOURCE_OF_TRUTH_TABLES)
    with ThreadPoolExecutor(max_workers=8) as pool:
        started = time.monotonic()
        failed = table_probe.unavailable_tables(client, tables, pool, deadline_seconds=0.3)
        elapsed = time.monotonic() - started
    assert failed == [table_name(SOCIAL_GRAPH)]
    assert elapsed < 1.0  # the reads run at once; the slow one is abandoned at the deadline


def test_each_table_gets_one_eventually_consistent_read_of_a_key_of_its_own_shape():
    client = SlowTable("none", delay=0)
    tables = tuple((table_name(s), s) for s in SOURCE_OF_TRUTH_TABLES)
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert table_probe.unavailable_tables(client, tables, pool, health.DEADLINE_SECONDS) == []
    reads = {r["TableName"]: r for r in client.reads}
    assert sorted(reads) == sorted(SOURCE_NAMES) and len(client.reads) == len(SOURCE_NAMES)
    assert all(r["ConsistentRead"] is False for r in reads.values())
    assert reads[table_name(TWEETS)]["Key"] == {"tweet_id": {"S": table_probe.PROBE_KEY}}
    assert reads[table_name(SOCIAL_GRAPH)]["Key"] == {
        "pk": {"S": table_probe.PROBE_KEY},
        "sk": {"S": table_probe.PROBE_KEY},
    }


def test_the_probe_client_tries_once_with_one_second_timeouts():
    client = health._dynamodb()
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 1}
    assert client.meta.config.connect_timeout == client.meta.config.read_timeout == 1
    assert clients.PROBE_CONFIG.connect_timeout == 1
    health._dynamodb.cache_clear()


@pytest.mark.parametrize("missing", [*ApiHealthSettings.variables(), "AWS_REGION"])
def test_a_missing_variable_is_named(missing):
    environment = {**HANDLER_ENVIRONMENT, "AWS_REGION": REGION}
    del environment[missing]
    with pytest.raises(SettingsError, match=missing):
        ApiHealthSettings.from_environment(environment)
