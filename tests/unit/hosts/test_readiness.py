"""A timeline host's GET /health means ready: cache volume mounted, cache usable, token keys loaded,
and DynamoDB answering or stale pages at hand."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from aiohttp.test_utils import TestClient, TestServer
from moto import mock_aws

from aviary.auth import TokenVerifier
from aviary.clients import AWS_CONFIG, PROBE_CONFIG
from aviary.host_settings import TimelineHostSettings
from aviary.schema import TIMELINES
from hosts.timeline_service.app import make_app
from hosts.timeline_service.cache import TimelineCache
from hosts.timeline_service.readiness import (
    PROBE_DEADLINE_SECONDS,
    Readiness,
    cache_usable,
    dynamodb_or_stale_pages,
    token_keys_loaded,
    volume_mounted,
)
from hosts.timeline_service.service import TimelineService
from tests.tokens import AUDIENCE, ISSUER, TokenIssuer
from tools.local_aws.tables import create_tables

REGION = "us-east-1"
# Nothing listens here: a DynamoDB that refuses every connection at once.
UNREACHABLE = "http://127.0.0.1:9"


def health(readiness: Readiness, tmp_path: Path) -> tuple[int, dict[str, Any]]:
    service = TimelineService(_NoReads(), TimelineCache(tmp_path / "app-cache.sqlite"))
    app = make_app(service, TokenVerifier(ISSUER, AUDIENCE, TokenIssuer().key_source), readiness)

    async def run() -> tuple[int, dict[str, Any]]:
        async with TestClient(TestServer(app)) as client:
            response = await client.get("/health")
            return response.status, await response.json()

    return asyncio.run(run())


class _NoReads:
    def read_page(self, *_args: Any) -> Any:
        raise AssertionError("a health check reads no timeline")


@pytest.fixture
def moto_dynamodb():
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION, config=AWS_CONFIG)
        names = create_tables(client, (TIMELINES,))
        yield client, names["timelines"]


def _dynamodb_check(client: Any, table: str, cache: TimelineCache) -> Any:
    return dynamodb_or_stale_pages(client, table, cache, ThreadPoolExecutor(max_workers=2))


def _unreachable_dynamodb() -> Any:
    return boto3.client(
        "dynamodb",
        region_name=REGION,
        endpoint_url=UNREACHABLE,
        config=PROBE_CONFIG,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_a_host_with_every_part_in_place_is_ready(moto_dynamodb, tmp_path):
    client, table = moto_dynamodb
    cache = TimelineCache(tmp_path / "cache.sqlite")
    readiness = Readiness(
        {
            "cache_volume": volume_mounted("/"),
            "cache": cache_usable(cache),
            "token_settings": token_keys_loaded(lambda: True),
            "dynamodb": _dynamodb_check(client, table, cache),
        }
    )
    assert health(readiness, tmp_path) == (200, {"status": "ok"})


def test_an_unmounted_cache_volume_is_not_ready_and_says_where(tmp_path):
    status, body = health(Readiness({"cache_volume": volume_mounted(str(tmp_path))}), tmp_path)
    assert status == 503
    assert body["error"]["code"] == "service_unavailable"
    assert f"the cache volume is not mounted at {tmp_path}" in body["error"]["message"]


def test_a_cache_that_cannot_be_opened_is_not_ready(tmp_path):
    (tmp_path / "not-a-directory").write_text("a file where the cache's directory should be")
    cache = TimelineCache(tmp_path / "not-a-directory" / "cache.sqlite")
    assert not cache.available
    status, body = health(Readiness({"cache": cache_usable(cache)}), tmp_path)
    assert status == 503
    assert "the page cache at" in body["error"]["message"]


def test_token_keys_not_loaded_is_not_ready(tmp_path):
    status, body = health(Readiness({"token_settings": token_keys_loaded(lambda: False)}), tmp_path)
    assert status == 503
    assert "token signing keys are not loaded" in body["error"]["message"]


def test_unreachable_dynamodb_and_a_cold_cache_is_not_ready_within_the_deadline(tmp_path):
    cache = TimelineCache(tmp_path / "cache.sqlite")
    readiness = Readiness({"dynamodb": _dynamodb_check(_unreachable_dynamodb(), "aviary-timelines", cache)})
    started = time.monotonic()
    status, body = health(readiness, tmp_path)
    assert time.monotonic() - started < PROBE_DEADLINE_SECONDS + 1.5
    assert status == 503
    assert (
        "the tables aviary-timelines did not answer within 1 s, and the cache holds no page"
        in (body["error"]["message"])
    )


def test_unreachable_dynamodb_with_stale_pages_at_hand_is_ready(tmp_path):
    cache = TimelineCache(tmp_path / "cache.sqlite")
    cache.put_json("alice", None, 20, '{"items":[],"next_cursor":null}', fetched_at=time.time() - 600)
    readiness = Readiness({"dynamodb": _dynamodb_check(_unreachable_dynamodb(), "aviary-timelines", cache)})
    assert health(readiness, tmp_path)[0] == 200


def test_pages_older_than_the_cache_serves_do_not_count_as_stale_pages_at_hand(tmp_path):
    cache = TimelineCache(tmp_path / "cache.sqlite", max_age_seconds=60)
    cache.put_json("alice", None, 20, "{}", fetched_at=time.time() - 61)
    assert not cache.holds_servable_pages()
    cache.put_json("bob", None, 20, "{}", fetched_at=time.time() - 59)
    assert cache.holds_servable_pages()


def test_answers_are_remembered_for_a_while_then_asked_again(tmp_path):
    asked = []
    now = [0.0]

    async def counting() -> str | None:
        asked.append(now[0])
        return None if len(asked) > 1 else "not yet"

    readiness = Readiness({"counting": counting}, remember_seconds=5, clock=lambda: now[0])
    assert asyncio.run(readiness.problems()) == {"counting": "not yet"}
    now[0] = 4.9
    assert asyncio.run(readiness.problems()) == {"counting": "not yet"}
    now[0] = 5.0
    assert asyncio.run(readiness.problems()) == {}
    assert asked == [0.0, 5.0]


def test_the_cache_mount_setting_is_optional_and_read_when_given():
    base = {
        "AVIARY_REGION": REGION,
        "AVIARY_TIMELINES_TABLE": "t",
        "AVIARY_COUNTS_TABLE": "c",
        "AVIARY_CELEBRITY_THRESHOLD": "10",
        "AVIARY_TOKEN_SETTINGS_PARAMETER": "/aviary/token-settings",
        "AVIARY_MEDIA_BASE_URL": "https://media.aviary.example.com",
    }
    assert TimelineHostSettings.from_environment(base).cache_mount is None
    assert (
        TimelineHostSettings.from_environment({**base, "AVIARY_CACHE_MOUNT": "/data"}).cache_mount == "/data"
    )
