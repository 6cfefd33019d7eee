"""The timeline host end to end over HTTP: moto DynamoDB, the SQLite cache and real RS256 tokens."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import boto3
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from botocore.exceptions import ClientError, EndpointConnectionError
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws
from yarl import URL

from aviary.auth import TokenVerifier
from aviary.clients import AWS_CONFIG
from aviary.counts import Counts
from aviary.errors import ServiceUnavailable
from aviary.host_settings import TimelineHostSettings
from aviary.keys import follows_sk, timeline_entry_key, user_pk
from aviary.media_urls import MEDIA_BASE_URL_VARIABLE, MediaUrls
from aviary.schema import COUNTS, SOCIAL_GRAPH, TIMELINES, TWEETS
from aviary.settings import SettingsError
from aviary.timeline import decode_cursor
from aviary.timeline_store import TimelineStore
from hosts.timeline_service.app import OTHER_PATHS, make_app
from hosts.timeline_service.cache import TimelineCache
from hosts.timeline_service.page_memory import ENTRY_OVERHEAD_BYTES, PageMemory
from hosts.timeline_service.service import TimelineService
from tests.tokens import AUDIENCE, ISSUER, TokenIssuer
from tools.local_aws.counting_client import CountingClient
from tools.local_aws.tables import create_tables

REGION = "us-east-1"
THRESHOLD = 10_000
MEDIA_BASE_URL = "https://media.aviary.example.com"


# -- harness -----------------------------------------------------------------------------------


def serve(app: web.Application, scenario: Callable[[TestClient], Awaitable[Any]]) -> Any:
    """Run `scenario` against `app` on a loopback test server (pytest-aiohttp's job, in five lines)."""

    async def run() -> Any:
        async with TestClient(TestServer(app)) as client:
            return await scenario(client)

    return asyncio.run(run())


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class ObservedClient(CountingClient):
    """Wraps the DynamoDB client to count calls, and to fail or hang them on demand."""

    def __init__(self, real: Any) -> None:
        super().__init__(real, self._fail_or_hang, by_operation=True)
        self.failure: Exception | None = None
        self.hang = threading.Event()  # set: every call blocks until released
        self.released = threading.Event()

    def _fail_or_hang(self, _operation: str, _kwargs: dict[str, Any]) -> None:
        if self.hang.is_set():
            self.released.wait(10)
            raise EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")
        if self.failure is not None:
            raise self.failure


def created_at(n: int) -> str:
    return f"2026-11-21T19:{n // 60:02d}:{n % 60:02d}.000Z"


def ulid(n: int) -> str:
    return f"01JD{n:022d}"


class Timelines:
    """moto tables plus writers for the shapes the write path produces (aviary.keys)."""

    def __init__(self, dynamodb: Any) -> None:
        self.dynamodb = dynamodb
        self.names = create_tables(dynamodb, (TWEETS, SOCIAL_GRAPH, TIMELINES, COUNTS))

    def follow(self, follower: str, followee: str) -> None:
        item = {"pk": {"S": user_pk(follower)}, "sk": {"S": follows_sk(followee)}}
        self.dynamodb.put_item(TableName=self.names["social-graph"], Item=item)

    def profile(self, handle: str, followers: int) -> None:
        """The follower count this region's graph-stream consumer keeps for `handle`."""
        item = {**Counts.followers_key(handle), "n": {"N": str(followers)}}
        self.dynamodb.put_item(TableName=self.names["counts"], Item=item)

    def tweet(self, n: int, author: str, *, deleted: bool = False) -> dict[str, Any]:
        item = {
            "tweet_id": {"S": ulid(n)},
            "author_id": {"S": author},
            "created_at": {"S": created_at(n)},
            "text": {"S": f"tweet {n} by {author}"},
            "media_ids": {"L": [{"S": f"media-{n}"}]},
            "media_versions": {"M": {f"media-{n}": {"S": f"version-{n}"}}},
        }
        if deleted:
            item["deleted"] = {"BOOL": True}
        self.dynamodb.put_item(TableName=self.names["tweets"], Item=item)
        return item

    def fan_out(self, n: int, author: str, to: str) -> None:
        """The tweet and its materialised entry in `to`'s timeline, as the fan-out Lambda writes it
        (to a follower of the author: a timeline shows only whom its reader follows)."""
        if to != author:
            self.follow(to, author)
        tweet = self.tweet(n, author)
        entry = {
            **tweet,
            "user_id": {"S": to},
            "entry_key": {"S": timeline_entry_key(created_at(n), ulid(n))},
            "expires_at": {"N": "1900000000"},
        }
        self.dynamodb.put_item(TableName=self.names["timelines"], Item=entry)


@pytest.fixture(scope="module")
def tokens() -> TokenIssuer:
    return TokenIssuer()


def bearer(tokens: TokenIssuer, user: str = "alice", *, username: str | None = None) -> dict[str, str]:
    """A token for the user whose ID is `user` (the data here is keyed by IDs as short as names),
    signed up as `username` (by default the same)."""
    return {"Authorization": f"Bearer {tokens.token(username or user, sub=user)}"}


@pytest.fixture
def aws():
    with mock_aws():
        yield boto3.client("dynamodb", region_name=REGION, config=AWS_CONFIG)


class Host:
    """One timeline host: app, service, cache and the observed DynamoDB client behind them."""

    def __init__(self, dynamodb: Any, tmp_path: Any, tokens: TokenIssuer, **service_options: Any) -> None:
        self.data = Timelines(dynamodb)
        self.client = ObservedClient(dynamodb)
        self.clock = FakeClock()
        self.cache = TimelineCache(tmp_path / "cache.sqlite")
        store = TimelineStore(
            self.client,
            self.data.names["timelines"],
            self.data.names["social-graph"],
            self.data.names["tweets"],
            self.data.names["counts"],
            THRESHOLD,
            urls=MediaUrls(MEDIA_BASE_URL),
        )
        self.service = TimelineService(store, self.cache, self.clock, **service_options)
        self.app = make_app(self.service, TokenVerifier(ISSUER, AUDIENCE, tokens.key_source))

    def cached(self, handle: str = "alice", limit: int = 20) -> bool:
        return self.cache.get(handle, None, limit, now=self.clock.now) is not None


@pytest.fixture
def host(aws, tmp_path, tokens):
    host = Host(aws, tmp_path, tokens)
    yield host
    host.client.released.set()


def ids(body: dict) -> list[str]:
    return [item["id"] for item in body["items"]]


# -- health ------------------------------------------------------------------------------------


def test_health_needs_no_token_and_touches_no_table(host):
    async def scenario(client):
        response = await client.get("/health")
        return response.status, await response.json()

    assert serve(host.app, scenario) == (200, {"status": "ok"})
    assert host.client.calls == Counter()


# -- reads, cache hits and the merge -----------------------------------------------------------


def test_a_miss_reads_dynamodb_and_a_fresh_hit_does_not(host, tokens):
    host.data.fan_out(1, "bob", to="alice")
    host.data.fan_out(2, "carol", to="alice")

    async def scenario(client):
        first = await client.get("/timeline", headers=bearer(tokens))
        assert first.status == 200
        first_body = await first.json()
        await eventually(host.cached)
        calls_after_miss = sum(host.client.calls.values())
        host.clock.now += 4  # inside the 5 s fresh window
        second = await client.get("/timeline", headers=bearer(tokens))
        return first_body, calls_after_miss, await second.json(), second.headers

    first, calls_after_miss, second, headers = serve(host.app, scenario)
    assert ids(first) == [ulid(2), ulid(1)]
    assert first["items"][0] == {
        "id": ulid(2),
        "author": "carol",
        "created_at": created_at(2),
        "text": "tweet 2 by carol",
        "reply_to": None,
        "retweet_of": None,
        "media_ids": ["media-2"],
        "media_urls": [f"{MEDIA_BASE_URL}/media/carol/media-2?versionId=version-2"],
        "original": None,
    }
    assert first["next_cursor"] is None
    assert calls_after_miss > 0
    assert second == first
    assert sum(host.client.calls.values()) == calls_after_miss  # the hit made no call
    assert "X-Aviary-Stale" not in headers
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert headers["Cache-Control"] == "private, no-store"


def test_the_timeline_is_the_token_users_whatever_the_usernames_spelling(host, tokens):
    # The host keys on the token's sub: "Dave" signed up with a capital reads his own timeline,
    # and an account whose username is "alice" but whose ID is another reads nothing of alice's.
    host.data.fan_out(1, "bob", to="dave-id")
    host.data.fan_out(2, "bob", to="alice")

    async def scenario(client):
        bodies = []
        for headers in (
            bearer(tokens, "dave-id", username="Dave"),
            bearer(tokens, "impostor", username="alice"),
        ):
            response = await client.get("/timeline", headers=headers)
            assert response.status == 200
            bodies.append(await response.json())
        return bodies

    dave, impostor = serve(host.app, scenario)
    assert ids(dave) == [ulid(1)]
    assert ids(impostor) == []


def test_entries_of_someone_no_longer_followed_are_not_shown_before_the_unfollow_removes_them(host, tokens):
    data = host.data
    for n in range(1, 4):
        data.fan_out(n, "bob", to="alice")
        data.fan_out(10 + n, "carol", to="alice")
    data.tweet(20, "alice")
    data.fan_out(20, "alice", to="alice")  # her own: always shown
    key = {"pk": {"S": user_pk("alice")}, "sk": {"S": follows_sk("carol")}}
    data.dynamodb.delete_item(TableName=data.names["social-graph"], Key=key)

    async def scenario(client):
        first = await (await client.get("/timeline", params={"limit": "2"}, headers=bearer(tokens))).json()
        rest = await client.get(
            "/timeline", params={"limit": "10", "cursor": first["next_cursor"]}, headers=bearer(tokens)
        )
        return first, await rest.json()

    first, rest = serve(host.app, scenario)
    assert ids(first) + ids(rest) == [ulid(20), ulid(3), ulid(2), ulid(1)]
    assert rest["next_cursor"] is None


def test_a_cached_page_older_than_the_fresh_window_is_read_again(host, tokens):
    host.data.fan_out(1, "bob", to="alice")

    async def scenario(client):
        await client.get("/timeline", headers=bearer(tokens))
        await eventually(host.cached)
        host.data.fan_out(2, "bob", to="alice")
        host.clock.now += 6
        response = await client.get("/timeline", headers=bearer(tokens))
        return await response.json()

    assert ids(serve(host.app, scenario)) == [ulid(2), ulid(1)]


def test_celebrities_are_merged_on_read_and_others_are_not(host, tokens):
    data = host.data
    for handle in ("celeb", "regular", "borderline"):
        data.follow("alice", handle)
    data.profile("celeb", THRESHOLD + 1)
    data.profile("regular", 50)
    data.profile("borderline", THRESHOLD)  # not above the threshold: fanned out on write
    data.tweet(5, "celeb")  # never fanned out: must come from the merge
    data.tweet(4, "regular")  # not in alice's timeline table: must not be merged on read
    data.tweet(3, "borderline")
    data.fan_out(2, "regular", to="alice")
    data.tweet(6, "stranger")  # a celebrity alice does not follow
    data.profile("stranger", THRESHOLD * 10)

    async def scenario(client):
        return await (await client.get("/timeline", headers=bearer(tokens))).json()

    assert ids(serve(host.app, scenario)) == [ulid(5), ulid(2)]


def test_deleted_celebrity_tweets_are_left_out(host, tokens):
    host.data.follow("alice", "celeb")
    host.data.profile("celeb", THRESHOLD * 2)
    host.data.tweet(1, "celeb")
    host.data.tweet(2, "celeb", deleted=True)
    host.data.tweet(3, "celeb")

    async def scenario(client):
        return await (await client.get("/timeline", headers=bearer(tokens))).json()

    assert ids(serve(host.app, scenario)) == [ulid(3), ulid(1)]


def test_a_tweet_both_fanned_out_and_merged_appears_once(host, tokens):
    host.data.follow("alice", "rising")
    host.data.fan_out(1, "rising", to="alice")  # fanned out while "rising" was below the threshold
    host.data.profile("rising", THRESHOLD + 5)

    async def scenario(client):
        return await (await client.get("/timeline", headers=bearer(tokens))).json()

    assert ids(serve(host.app, scenario)) == [ulid(1)]


def test_a_cursor_pages_through_entries_and_celebrity_tweets(host, tokens):
    data = host.data
    data.follow("alice", "celeb")
    data.profile("celeb", THRESHOLD + 1)
    for n in (1, 3, 4, 6, 7):
        data.fan_out(n, "bob", to="alice")
    for n in (2, 5):
        data.tweet(n, "celeb")

    async def scenario(client):
        first = await (await client.get("/timeline", params={"limit": "4"}, headers=bearer(tokens))).json()
        second_response = await client.get(
            "/timeline", params={"limit": "4", "cursor": first["next_cursor"]}, headers=bearer(tokens)
        )
        return first, await second_response.json()

    first, second = serve(host.app, scenario)
    assert ids(first) == [ulid(7), ulid(6), ulid(5), ulid(4)]
    assert decode_cursor(first["next_cursor"]) == timeline_entry_key(created_at(4), ulid(4))
    assert ids(second) == [ulid(3), ulid(2), ulid(1)]
    assert second["next_cursor"] is None


def test_a_user_following_many_people_is_read_across_query_and_batch_pages(host, tokens):
    """Over 100 followees: BatchGetItem in chunks of 100, whatever order moto returns them in."""
    for n in range(130):
        host.data.follow("alice", f"user{n:03d}")
        host.data.profile(f"user{n:03d}", THRESHOLD + 1 if n in (7, 120) else 10)
    host.data.tweet(1, "user007")
    host.data.tweet(2, "user120")
    host.data.tweet(3, "user050")

    async def scenario(client):
        return await (await client.get("/timeline", headers=bearer(tokens))).json()

    assert ids(serve(host.app, scenario)) == [ulid(2), ulid(1)]


# -- degraded DynamoDB ---------------------------------------------------------------------------


def _warm_then_break(host: Host, tokens: TokenIssuer, break_dynamodb: Callable[[], None]):
    host.data.fan_out(1, "bob", to="alice")

    async def scenario(client):
        warm = await (await client.get("/timeline", headers=bearer(tokens))).json()
        await eventually(host.cached)
        host.clock.now += 60
        break_dynamodb()
        started = time.monotonic()
        response = await client.get("/timeline", headers=bearer(tokens))
        return warm, response.status, response.headers, await response.json(), time.monotonic() - started

    return serve(host.app, scenario)


def test_a_failing_dynamodb_is_answered_from_the_cache_marked_stale(host, tokens):
    throttled = ClientError(
        {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, "Query"
    )

    def fail():
        host.client.failure = throttled

    warm, status, headers, body, _ = _warm_then_break(host, tokens, fail)
    assert status == 200
    assert headers["X-Aviary-Stale"] == "true"
    assert headers["Age"] == "60"
    assert headers["Cache-Control"] == "private, no-store"
    assert body == warm


def test_a_slow_dynamodb_is_answered_from_the_cache_within_the_deadline(aws, tmp_path, tokens):
    host = Host(aws, tmp_path, tokens, deadline_seconds=0.2)
    try:
        warm, status, headers, body, elapsed = _warm_then_break(host, tokens, host.client.hang.set)
    finally:
        host.client.released.set()
    assert status == 200
    assert headers["X-Aviary-Stale"] == "true"
    assert int(headers["Age"]) >= 60
    assert body == warm
    assert elapsed < 1.0


def _fetch_with_nothing_cached(host: Host, tokens: TokenIssuer):
    async def scenario(client):
        started = time.monotonic()
        response = await client.get("/timeline", headers=bearer(tokens))
        return response.status, response.headers, await response.json(), time.monotonic() - started

    return serve(host.app, scenario)


def test_a_failing_dynamodb_with_nothing_cached_is_a_503_with_retry_after(host, tokens):
    host.client.failure = EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")
    status, headers, body, _ = _fetch_with_nothing_cached(host, tokens)
    assert status == 503
    assert headers["Retry-After"] == "2"
    assert body["error"]["code"] == "service_unavailable"
    assert "retry" in body["error"]["message"]


def test_a_slow_dynamodb_with_nothing_cached_is_a_503_within_the_deadline(aws, tmp_path, tokens):
    host = Host(aws, tmp_path, tokens, deadline_seconds=0.2)
    host.client.hang.set()
    try:
        status, headers, _, elapsed = _fetch_with_nothing_cached(host, tokens)
    finally:
        host.client.released.set()
    assert status == 503
    assert headers["Retry-After"] == "2"
    assert elapsed < 1.0


class GatedStore:
    """A store whose reads wait for the test to open the gate, counting how many were made."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.reads = 0

    def read_page(self, handle: str, limit: int, cursor: str | None) -> dict:
        self.reads += 1
        self.gate.wait(5)
        return {"items": [], "next_cursor": None}


def test_concurrent_misses_of_one_page_share_one_read(tmp_path, tokens):
    store = GatedStore()
    service = TimelineService(store, TimelineCache(tmp_path / "cache.sqlite"), FakeClock())
    app = make_app(service, TokenVerifier(ISSUER, AUDIENCE, tokens.key_source))

    async def scenario(client):
        requests = [asyncio.ensure_future(client.get("/timeline", headers=bearer(tokens))) for _ in range(5)]
        await asyncio.sleep(0.2)
        store.gate.set()
        return [response.status for response in await asyncio.gather(*requests)]

    assert serve(app, scenario) == [200] * 5
    assert store.reads == 1


def test_reads_beyond_the_pending_limit_are_shed_at_once(tmp_path, tokens):
    store = GatedStore()
    cache = TimelineCache(tmp_path / "cache.sqlite")
    service = TimelineService(store, cache, FakeClock(), deadline_seconds=2, max_pending_reads=1)
    app = make_app(service, TokenVerifier(ISSUER, AUDIENCE, tokens.key_source))

    async def scenario(client):
        first = asyncio.ensure_future(client.get("/timeline", headers=bearer(tokens, "alice")))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        shed = await client.get("/timeline", headers=bearer(tokens, "bob"))
        shed_after = time.monotonic() - started
        store.gate.set()
        return (await first).status, shed.status, shed_after

    first, shed, shed_after = serve(app, scenario)
    assert (first, shed) == (200, 503)
    assert shed_after < 0.5


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "-5"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "%%%"}, "cursor"),
    ],
)
def test_bad_query_parameters_are_a_400_naming_the_field(host, tokens, params, field):
    async def scenario(client):
        response = await client.get("/timeline", params=params, headers=bearer(tokens))
        return response.status, await response.json()

    status, body = serve(host.app, scenario)
    assert status == 400
    assert body["error"]["field"] == field
    assert body["error"]["code"] == "invalid_request"
    assert host.client.calls == Counter()


def test_a_query_string_reads_as_aiohttp_reads_it_and_a_bad_one_is_refused_every_time(host, tokens):
    # The host remembers what each query string parsed to; what it remembers must be what
    # request.query would give, and a refusal must not be remembered as anything.
    async def scenario(client):
        first = await client.get("/timeline", params={"limit": "1"}, headers=bearer(tokens))
        cursor = (await first.json())["next_cursor"]
        pages = []
        for query in (
            f"limit=1&cursor={cursor}",
            f"limit=%31&cursor={cursor}",
            f"cursor={cursor}&limit=1&limit=7",
        ):
            response = await client.get(URL(f"/timeline?{query}", encoded=True), headers=bearer(tokens))
            pages.append((response.status, await response.json()))
        refusals = []
        for _ in range(2):
            response = await client.get("/timeline?limit=0", headers=bearer(tokens))
            refusals.append((response.status, (await response.json())["error"]["field"]))
        return pages, refusals

    host.data.follow("alice", "bob")
    for n in (1, 2, 3):
        host.data.fan_out(n, "bob", to="alice")
    pages, refusals = serve(host.app, scenario)
    assert [status for status, _ in pages] == [200, 200, 200]
    assert pages[0][1] == pages[1][1] == pages[2][1]
    assert len(pages[0][1]["items"]) == 1
    assert refusals == [(400, "limit"), (400, "limit")]


def _bad_tokens(tokens: TokenIssuer) -> dict[str, dict[str, str]]:
    now = int(time.time())
    unsigned = tokens.token().rsplit(".", 1)[0].split(".", 1)[1]
    return {
        "missing": {},
        "not bearer": {"Authorization": f"Token {tokens.token()}"},
        "malformed": {"Authorization": "Bearer not.a.jwt"},
        "expired": {"Authorization": f"Bearer {tokens.token(exp=now - 3600)}"},
        "wrong audience": {"Authorization": f"Bearer {tokens.token(aud='someone-else')}"},
        # header {"alg":"none","typ":"JWT"}, a valid payload and no signature
        "alg none": {"Authorization": f"Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{unsigned}."},
    }


@pytest.mark.parametrize("case", list(_bad_tokens(TokenIssuer())))
def test_a_bad_token_is_a_401_naming_the_header(host, tokens, case):
    headers = _bad_tokens(tokens)[case]

    async def scenario(client):
        response = await client.get("/timeline", headers=headers)
        return response.status, await response.json()

    status, body = serve(host.app, scenario)
    assert status == 401
    assert body["error"]["field"] == "Authorization"
    assert host.client.calls == Counter()


def test_unknown_paths_and_methods_get_json_errors(host, tokens):
    async def scenario(client):
        missing = await client.get("/nowhere")
        wrong_method = await client.post("/timeline", headers=bearer(tokens))
        return missing.status, await missing.json(), wrong_method.status, await wrong_method.json()

    missing_status, missing, method_status, method = serve(host.app, scenario)
    assert (missing_status, missing["error"]["code"]) == (404, "not_found")
    assert method_status == 405
    assert method["error"]["code"] == "method_not_allowed"


def test_paths_the_host_does_not_serve_go_to_the_handler_it_is_given(host, tokens):
    # How the local runtime serves its write API on the host's port (tools/local_runtime/region.py).
    async def api(request: web.Request) -> web.Response:
        return web.json_response({"api": f"{request.method} {request.path}"})

    host.app[OTHER_PATHS] = api

    async def scenario(client):
        other = await client.post("/tweets", headers=bearer(tokens))
        wrong_method = await client.post("/timeline", headers=bearer(tokens))
        health = await client.get("/health")
        return await other.json(), wrong_method.status, await health.json()

    other, wrong_method, health = serve(host.app, scenario)
    assert other == {"api": "POST /tweets"}
    assert wrong_method == 405
    assert health == {"status": "ok"}


class EmptyStore:
    def read_page(self, handle: str, limit: int, cursor: str | None) -> dict:
        return {"items": [], "next_cursor": None}


# Printable ASCII but space and '#' (which would end the request target); '%' sequences may be broken.
RAW_QUERY = st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="#"), max_size=80)


def test_no_query_string_produces_a_5xx(tmp_path, tokens):
    service = TimelineService(EmptyStore(), TimelineCache(tmp_path / "cache.sqlite"), FakeClock())
    app = make_app(service, TokenVerifier(ISSUER, AUDIENCE, tokens.key_source))
    headers = bearer(tokens)
    loop = asyncio.new_event_loop()
    client = TestClient(TestServer(app), loop=loop)
    loop.run_until_complete(client.start_server())

    async def status_of(url: str | URL, params: dict[str, str] | None = None) -> int:
        async with client.get(url, params=params, headers=headers) as response:
            await response.read()
            return response.status

    @settings(max_examples=300, deadline=None)
    @given(
        limit=st.one_of(st.none(), st.text(max_size=30)),
        cursor=st.one_of(st.none(), st.text(max_size=80)),
        raw=RAW_QUERY,
    )
    def check(limit, cursor, raw):
        params = {name: value for name, value in (("limit", limit), ("cursor", cursor)) if value is not None}
        assert loop.run_until_complete(status_of("/timeline", params)) < 500
        assert loop.run_until_complete(status_of(URL(f"/timeline?{raw}", encoded=True))) < 500

    try:
        check()
    finally:
        loop.run_until_complete(client.close())
        loop.close()


# -- settings ---------------------------------------------------------------------------------------

REQUIRED = {
    "AVIARY_REGION": "us-east-1",
    "AVIARY_TIMELINES_TABLE": "Data-Timelines-ABC",
    "AVIARY_COUNTS_TABLE": "Data-Counts-ABC",
    "AVIARY_CELEBRITY_THRESHOLD": "10000",
    "AVIARY_JWT_ISSUER": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Pool/",
    "AVIARY_JWT_AUDIENCE": "client-id",
    MEDIA_BASE_URL_VARIABLE: f"{MEDIA_BASE_URL}/",
}


def test_settings_fill_in_defaults():
    settings_ = TimelineHostSettings.from_environment(REQUIRED)
    assert settings_.social_graph_table == "aviary-social-graph"
    assert settings_.tweets_table == "aviary-tweets"
    assert settings_.port == 8080
    assert settings_.listen_host == "0.0.0.0"
    assert settings_.cache_path == "/data/timeline-cache/cache.sqlite"
    assert settings_.jwt_issuer == "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Pool"
    assert settings_.jwks_url == f"{settings_.jwt_issuer}/.well-known/jwks.json"
    assert settings_.celebrity_follower_threshold == 10_000
    assert settings_.media_base_url == MEDIA_BASE_URL  # without its trailing slash


@pytest.mark.parametrize(
    ("name", "value"),
    [("AVIARY_PORT", "http"), ("AVIARY_PORT", "70000"), ("AVIARY_CELEBRITY_THRESHOLD", "-1")],
)
def test_a_bad_number_setting_is_named(name, value):
    with pytest.raises(SettingsError, match=name):
        TimelineHostSettings.from_environment({**REQUIRED, name: value})


def test_deployed_hosts_take_token_settings_from_the_parameter_their_env_file_names():
    # The env file the fleet writes (stacks/components/host_fleet.py) sets the parameter and no
    # issuer: the service must start from those variables alone.
    from stacks.components.host_fleet import environment_file

    env_file = environment_file(
        TimelineHostSettings(
            region="us-east-1",
            timelines_table="timelines",
            counts_table="counts",
            celebrity_follower_threshold=10_000,
            cache_mount="/data",
            token_settings_parameter="/aviary/identity/token-settings",
            media_base_url=MEDIA_BASE_URL,
        )
    )
    environ = dict(line.split("=", 1) for line in env_file.splitlines())
    settings_ = TimelineHostSettings.from_environment(environ)
    assert settings_.token_settings_parameter == "/aviary/identity/token-settings"
    assert settings_.jwt_issuer is None
    assert settings_.cache_path == "/data/timeline-cache/cache.sqlite"
    assert settings_.port == 8080
    assert settings_.media_base_url == MEDIA_BASE_URL


# -- protocol errors ----------------------------------------------------------------------------------


def raw_exchange(app: web.Application, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `request` as raw bytes to the app on a real socket; the status, headers and body back."""

    async def scenario(client: TestClient) -> tuple[int, dict[str, str], bytes]:
        reader, writer = await asyncio.open_connection(client.host, client.port)
        writer.write(request)
        await writer.drain()
        answer = await reader.read()
        writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in header_lines)
        return int(status_line.split()[1]), {k.lower(): v for k, v in headers.items()}, body

    return serve(app, scenario)


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(b"GET /timeline?" + b"x" * 9000 + b" HTTP/1.1\r\nHost: h\r\n\r\n", id="request-line"),
        pytest.param(
            b"GET /timeline HTTP/1.1\r\nHost: h\r\nX-Big: " + b"y" * 9000 + b"\r\n\r\n", id="header"
        ),
        pytest.param(b"GET /timeline HTTP/1.1\r\nHost: h\r\nBad Header\r\n\r\n", id="malformed-header"),
        pytest.param(b"G<T> /timeline HTTP/1.1\r\nHost: h\r\n\r\n", id="bad-method"),
    ],
)
def test_a_request_the_server_cannot_read_gets_the_json_error_shape_and_no_echo(host, request_bytes):
    status, headers, body = raw_exchange(host.app, request_bytes)

    assert 400 <= status < 500
    assert headers["content-type"].startswith("application/json")
    error = json.loads(body)["error"]
    assert set(error) == {"code", "message", "field"}
    assert b"xxxx" not in body and b"yyyy" not in body and b"Bad Header" not in body and b"G<T>" not in body


# -- the two cache tiers: memory in each worker, the disk shared by the host's workers ----------------


class VersionedStore:
    """A store whose page is whatever version the test says, counting its reads; it fails on demand."""

    def __init__(self) -> None:
        self.version = 1
        self.reads = 0
        self.failure: Exception | None = None

    def read_page(self, user_id: str, limit: int, cursor: str | None) -> dict:
        self.reads += 1
        if self.failure is not None:
            raise self.failure
        return {"items": [{"tweet_id": f"v{self.version}", "user": user_id}], "next_cursor": None}


class WatchedCache(TimelineCache):
    """The disk cache, noting each read and the thread it ran on."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_threads: list[str] = []

    def get_json(self, *args: Any, **kwargs: Any) -> tuple[str, float] | None:
        self.read_threads.append(threading.current_thread().name)
        return super().get_json(*args, **kwargs)


def version_of(result: Any) -> str:
    return result.page["items"][0]["tweet_id"]


UNREACHABLE = EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")


def worker(store: VersionedStore, path: Any, clock: FakeClock, **options: Any) -> TimelineService:
    """One worker process of a host: its own service and memory, the host's cache file."""
    return TimelineService(store, WatchedCache(path), clock, **options)


def read(service: TimelineService, user: str = "alice", limit: int = 20) -> Any:
    async def call() -> Any:
        return await service.timeline(user, limit, None)

    return asyncio.run(call())


def settle(service: TimelineService) -> None:
    """Wait for the writes behind the replies to reach the disk."""
    service._cache_writes.submit(lambda: None).result(timeout=5)


def test_a_hot_page_is_served_from_memory_with_no_disk_read(tmp_path):
    store, clock = VersionedStore(), FakeClock()
    service = worker(store, tmp_path / "cache.sqlite", clock)
    try:
        assert version_of(read(service)) == "v1"  # a miss: the disk, then the store
        disk_reads = len(service.cache.read_threads)
        for _ in range(50):
            clock.now += 0.05
            result = read(service)
            assert (result.stale, version_of(result)) == (False, "v1")
    finally:
        service.close()
    assert store.reads == 1
    assert len(service.cache.read_threads) == disk_reads == 1
    assert service.cache.read_threads[0].startswith("timeline-cache-read")  # never the event loop's


def test_the_hot_path_answers_only_a_fresh_page_in_memory(tmp_path):
    store, clock = VersionedStore(), FakeClock()
    service = worker(store, tmp_path / "cache.sqlite", clock)
    try:
        assert service.fresh_in_memory("alice", 20, None) is None
        read(service)
        clock.now += 4.9
        hit = service.fresh_in_memory("alice", 20, None)
        clock.now += 0.2
        past = service.fresh_in_memory("alice", 20, None)
    finally:
        service.close()
    assert (hit.stale, version_of(hit), round(hit.age_seconds, 6)) == (False, "v1", 4.9)
    assert past is None


def test_a_page_in_memory_past_the_fresh_window_is_read_again(tmp_path):
    store, clock = VersionedStore(), FakeClock()
    service = worker(store, tmp_path / "cache.sqlite", clock)
    try:
        read(service)
        store.version = 2
        clock.now += 4.9
        assert version_of(read(service)) == "v1"  # still fresh
        clock.now += 0.2
        assert version_of(read(service)) == "v2"
        assert version_of(read(service)) == "v2"
    finally:
        service.close()
    assert store.reads == 2


def test_a_worker_serves_a_newer_page_another_worker_stored_rather_than_its_own_older_one(tmp_path):
    store, clock = VersionedStore(), FakeClock()
    path = tmp_path / "cache.sqlite"
    first, second = worker(store, path, clock), worker(store, path, clock)
    try:
        read(first)  # v1 in the first worker's memory and on disk
        store.version = 2
        clock.now += 6
        assert version_of(read(second)) == "v2"  # the second worker reads the store
        settle(second)
        clock.now += 0.5
        result = read(first)  # its own copy is past the window; the disk holds v2, fresh
        assert (result.stale, version_of(result), result.age_seconds) == (False, "v2", 0.5)
        assert store.reads == 2
        clock.now += 1
        assert version_of(read(first)) == "v2"  # and now from its memory
        assert len(first.cache.read_threads) == 2
    finally:
        first.close()
        second.close()


def test_stale_on_error_serves_the_newest_copy_either_tier_holds(tmp_path):
    store, clock = VersionedStore(), FakeClock()
    path = tmp_path / "cache.sqlite"
    first, second = worker(store, path, clock), worker(store, path, clock)
    try:
        read(first)
        store.version = 2
        clock.now += 6
        read(second)
        settle(second)
        clock.now += 54
        store.failure = UNREACHABLE
        result = read(first)
    finally:
        first.close()
        second.close()
    assert (result.stale, version_of(result), result.age_seconds) == (True, "v2", 54)


def test_a_restarted_worker_serves_from_the_disk_cache(tmp_path):
    store, clock = VersionedStore(), FakeClock()
    path = tmp_path / "cache.sqlite"
    before = worker(store, path, clock)
    read(before)
    before.close()  # waits for its cache writes

    store.failure = UNREACHABLE
    after = worker(store, path, clock)  # a new process: nothing in memory
    try:
        clock.now += 2
        fresh = read(after)
        reads_for_fresh = store.reads
        clock.now += 60
        stale = read(after)
    finally:
        after.close()
    assert (fresh.stale, version_of(fresh), reads_for_fresh) == (False, "v1", 1)
    assert (stale.stale, version_of(stale), stale.age_seconds) == (True, "v1", 62)


def test_pages_evicted_from_a_small_memory_are_served_from_the_disk(tmp_path):
    store, clock = VersionedStore(), FakeClock()
    memory = PageMemory(3 * (ENTRY_OVERHEAD_BYTES + 60))
    service = worker(store, tmp_path / "cache.sqlite", clock, memory=memory)
    users = [f"user{n}" for n in range(10)]
    try:
        for user in users:
            read(service, user)
        settle(service)
        assert memory.bytes_held <= memory.max_bytes
        assert len(memory) < len(users)
        clock.now += 1
        assert [read(service, user).page["items"][0]["user"] for user in users] == users
    finally:
        service.close()
    assert store.reads == len(users)  # the evicted pages came from the disk, still fresh


def test_without_a_usable_disk_cache_memory_still_serves_and_serves_stale(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    store, clock = VersionedStore(), FakeClock()
    service = worker(store, blocker / "cache.sqlite", clock)
    try:
        read(service)
        clock.now += 1
        hit = read(service)
        clock.now += 60
        store.failure = UNREACHABLE
        stale = read(service)
    finally:
        service.close()
    assert not service.cache.available
    assert (hit.stale, store.reads) == (False, 2)
    assert (stale.stale, stale.age_seconds) == (True, 61)


def test_a_page_in_memory_older_than_the_cache_serves_is_not_served_stale(tmp_path):
    store, clock = VersionedStore(), FakeClock()
    cache = TimelineCache(tmp_path / "cache.sqlite", max_age_seconds=60)
    service = TimelineService(store, cache, clock)
    try:
        read(service)
        clock.now += 61
        store.failure = UNREACHABLE
        with pytest.raises(ServiceUnavailable):
            read(service)
    finally:
        service.close()
    assert len(service.memory) == 0
