"""The local HTTP API: its own answers (404, 401, 500, 503), the payload 2.0 event, the handler's reply."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import boto3
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from moto import mock_aws

from aviary import clients
from aviary.auth import TokenVerifier
from aviary.clients import AWS_CONFIG
from aviary.ids import generate_ulid
from aviary.schema import COUNTS, SOURCE_OF_TRUTH_TABLES
from lambda_functions.api import tweets as tweets_api
from lambda_functions.api.routes import ROUTES
from tests.tokens import AUDIENCE, ISSUER, TokenIssuer
from tests.unit.lambda_functions.handler_environment import HANDLER_ENVIRONMENT
from tests.unit.lambda_functions.lambda_context import lambda_context
from tools.local_aws.api_events import api_event
from tools.local_aws.event_sources import LambdaContext
from tools.local_aws.tables import create_tables
from tools.local_runtime.api_gateway import LocalHttpApi, route

REGION = "us-east-1"
ACCOUNT = "123456789012"
NOTE_ROUTE = "POST /notes/{owner}/items/{id}"


def serve(api: LocalHttpApi, scenario: Callable[[TestClient], Awaitable[Any]]) -> Any:
    """Run `scenario` against `api` answering every path, as region.py's host app hands it every path
    but /timeline and /health, on a loopback test server."""
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", api.handle)

    async def run() -> Any:
        async with TestClient(TestServer(app)) as client:
            return await scenario(client)

    return asyncio.run(run())


async def reply(response: Any) -> tuple[int, Any]:
    return response.status, await response.json()


@pytest.fixture(scope="module")
def tokens() -> TokenIssuer:
    return TokenIssuer()


def bearer(tokens: TokenIssuer, handle: str = "alice", **claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.token(handle, **claims)}"}


class Recorder:
    """A route's handler: remembers each event and context, and answers with `answer(event)`."""

    def __init__(self, answer: Callable[[dict[str, Any]], Any] = lambda _event: {"statusCode": 204}) -> None:
        self.answer = answer
        self.events: list[dict[str, Any]] = []
        self.contexts: list[Any] = []

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        self.contexts.append(context)
        return self.answer(event)


def notes_api(tokens: TokenIssuer, handler: Recorder, *, timeout: float = 5.0) -> LocalHttpApi:
    context = LambdaContext(function_name="notes", invoked_function_arn="arn:aws:lambda:::function:notes")
    routes = [
        route(NOTE_ROUTE, handler, lambda: context, timeout),
        route("GET /notes", handler, lambda: context, 5),
    ]
    return LocalHttpApi(
        routes, TokenVerifier(ISSUER, AUDIENCE, tokens.key_source), region=REGION, account=ACCOUNT
    )


# -- what API Gateway answers itself ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nothing-here"),
        ("DELETE", "/notes/alice/items/1"),
        ("POST", "/notes/alice/items/1/more"),
        ("POST", "/notes/alice/items/"),
    ],
    ids=["unknown-path", "wrong-method", "extra-segment", "empty-parameter"],
)
@pytest.mark.parametrize("signed_in", [True, False], ids=["token", "no-token"])
def test_an_unknown_route_is_not_found_before_any_token_check(tokens, method, path, signed_in):
    handler = Recorder()
    headers = bearer(tokens) if signed_in else {}

    async def scenario(client: TestClient) -> tuple[int, Any]:
        return await reply(await client.request(method, path, headers=headers))

    assert serve(notes_api(tokens, handler), scenario) == (404, {"message": "Not Found"})
    assert handler.events == []


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Basic YWxpY2U6c2VjcmV0",
        "Bearer not-a-jwt",
        lambda tokens: f"Bearer {tokens.token(exp=int(time.time()) - 3600)}",
        lambda tokens: f"Bearer {tokens.token(aud='another-client')}",
        lambda tokens: f"Bearer {tokens.token(iss='https://issuer.example')}",
        lambda _tokens: f"Bearer {TokenIssuer().token()}",  # the right key ID, another key
    ],
    ids=["missing", "empty", "no-token", "basic", "malformed", "expired", "audience", "issuer", "signature"],
)
def test_a_request_without_a_valid_id_token_is_unauthorized(tokens, authorization):
    handler = Recorder()
    value = authorization(tokens) if callable(authorization) else authorization
    headers = {} if value is None else {"Authorization": value}

    async def scenario(client: TestClient) -> tuple[int, Any, str | None]:
        response = await client.post("/notes/alice/items/1", headers=headers, json={})
        return response.status, await response.json(), response.headers.get("www-authenticate")

    assert serve(notes_api(tokens, handler), scenario) == (
        401,
        {"message": "Unauthorized"},
        'Bearer error="invalid_token"',
    )
    assert handler.events == []


def test_a_raising_handler_is_an_internal_server_error(tokens):
    def fail(_event: dict[str, Any]) -> Any:
        raise RuntimeError("boom")

    async def scenario(client: TestClient) -> tuple[int, Any]:
        return await reply(await client.get("/notes", headers=bearer(tokens)))

    assert serve(notes_api(tokens, Recorder(fail)), scenario) == (500, {"message": "Internal Server Error"})


def test_a_handler_slower_than_the_route_timeout_is_service_unavailable(tokens):
    release = threading.Event()

    def slow(_event: dict[str, Any]) -> Any:
        release.wait(5)
        return {"statusCode": 200, "body": "too late"}

    async def scenario(client: TestClient) -> tuple[int, Any, float]:
        started = time.monotonic()
        try:
            status, body = await reply(await client.post("/notes/alice/items/1", headers=bearer(tokens)))
        finally:
            release.set()  # the handler's thread must end before the loop can close
        return status, body, time.monotonic() - started

    status, body, took = serve(notes_api(tokens, Recorder(slow), timeout=0.05), scenario)
    assert (status, body) == (503, {"message": "Service Unavailable"})
    assert took < 2


# -- the event the handler gets --------------------------------------------------------------------------


def test_a_valid_request_reaches_the_handler_as_a_payload_2_event(tokens):
    handler = Recorder()
    api = notes_api(tokens, handler)

    async def scenario(client: TestClient) -> int:
        response = await client.post(
            "/notes/caf%C3%A9/items/a%20b?tag=x&tag=y&empty=",
            headers={**bearer(tokens, "Alice_1"), "X-Trace-Id": "t-1", "Content-Type": "application/json"},
            data='{"text": "hi"}',
        )
        return response.status

    assert serve(api, scenario) == 204
    [event] = handler.events
    assert event["version"] == "2.0"
    assert event["routeKey"] == NOTE_ROUTE
    assert event["rawPath"] == "/notes/caf%C3%A9/items/a%20b"
    assert event["pathParameters"] == {"owner": "café", "id": "a b"}
    assert event["rawQueryString"] == "tag=x&tag=y&empty="
    assert event["queryStringParameters"] == {"tag": "x,y", "empty": ""}
    assert all(name == name.lower() for name in event["headers"])
    assert event["headers"]["x-trace-id"] == "t-1"
    assert event["headers"]["content-type"] == "application/json"
    assert (event["body"], event["isBase64Encoded"]) == ('{"text": "hi"}', False)
    request = event["requestContext"]
    assert (request["routeKey"], request["accountId"], request["stage"]) == (NOTE_ROUTE, ACCOUNT, "$default")
    assert (request["http"]["method"], request["http"]["path"]) == ("POST", "/notes/café/items/a b")
    claims = request["authorizer"]["jwt"]["claims"]
    assert (claims["cognito:username"], claims["aud"], claims["iss"]) == ("Alice_1", AUDIENCE, ISSUER)
    assert all(isinstance(value, str) for value in claims.values())  # as the JWT authorizer passes them
    assert int(claims["exp"]) > time.time()
    assert request["requestId"] and abs(request["timeEpoch"] / 1000 - time.time()) < 60
    [context] = handler.contexts
    assert context.function_name == "notes"


def test_a_get_without_a_body_or_parameters_has_neither(tokens):
    handler = Recorder()

    async def scenario(client: TestClient) -> int:
        return (await client.get("/notes", headers=bearer(tokens))).status

    assert serve(notes_api(tokens, handler), scenario) == 204
    [event] = handler.events
    assert {"body", "pathParameters", "queryStringParameters"}.isdisjoint(event)
    assert event["isBase64Encoded"] is False


@pytest.mark.parametrize(
    ("content_type", "body", "as_text"),
    [
        ("text/plain; charset=utf-8", "héllo".encode(), True),
        ("application/problem+json", b'{"a": 1}', True),
        ("image/png", b"\x89PNG\r\n\x1a\n\x00\xff", False),
        ("application/octet-stream", b"\x00\x01\x02", False),
        ("application/json", b"\xff\xfe not utf-8", False),
    ],
    ids=["text", "json-suffix", "png", "octet-stream", "json-not-utf8"],
)
def test_text_bodies_arrive_as_text_and_others_base64_encoded(tokens, content_type, body, as_text):
    handler = Recorder()

    async def scenario(client: TestClient) -> int:
        headers = {**bearer(tokens), "Content-Type": content_type}
        return (await client.post("/notes/alice/items/1", headers=headers, data=body)).status

    assert serve(notes_api(tokens, handler), scenario) == 204
    [event] = handler.events
    if as_text:
        assert (event["body"], event["isBase64Encoded"]) == (body.decode(), False)
    else:
        assert event["isBase64Encoded"] is True
        assert base64.b64decode(event["body"]) == body


# -- the handler's reply ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "status", "content_type", "body"),
    [
        (
            {"statusCode": 201, "headers": {"content-type": "application/json"}, "body": '{"ok":true}'},
            201,
            "application/json",
            b'{"ok":true}',
        ),
        (
            {
                "statusCode": 200,
                "headers": {"content-type": "image/png"},
                "body": base64.b64encode(b"\x89PNG\x00").decode(),
                "isBase64Encoded": True,
            },
            200,
            "image/png",
            b"\x89PNG\x00",
        ),
        ({"ok": True}, 200, "application/json", b'{"ok": true}'),
    ],
    ids=["json", "binary", "bare-value"],
)
def test_the_handlers_status_headers_and_body_come_back(tokens, answer, status, content_type, body):
    async def scenario(client: TestClient) -> tuple[int, str, bytes, str | None]:
        response = await client.get("/notes", headers=bearer(tokens))
        return (
            response.status,
            response.content_type,
            await response.read(),
            response.headers.get("apigw-requestid"),
        )

    got_status, got_type, got_body, request_id = serve(
        notes_api(tokens, Recorder(lambda _e: answer)), scenario
    )

    assert (got_status, got_type, got_body) == (status, content_type, body)
    assert request_id


def test_handler_headers_are_passed_on(tokens):
    answer = {"statusCode": 202, "headers": {"idempotent-replayed": "true", "retry-after": 3}, "body": ""}

    async def scenario(client: TestClient) -> tuple[int, str | None, str | None]:
        response = await client.get("/notes", headers=bearer(tokens))
        return (
            response.status,
            response.headers.get("idempotent-replayed"),
            response.headers.get("retry-after"),
        )

    assert serve(notes_api(tokens, Recorder(lambda _e: answer)), scenario) == (202, "true", "3")


# -- the real tweets handler behind it -------------------------------------------------------------------


@pytest.fixture
def tweets_world(monkeypatch):
    """moto tables and the tweets handler pointed at them, built afresh (a cold start) in this test."""
    for name, value in HANDLER_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(clients, "_clients", {})
    tweets_api._routes.cache_clear()
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION, config=AWS_CONFIG)
        create_tables(client, [*SOURCE_OF_TRUTH_TABLES, COUNTS])
        yield
    tweets_api._routes.cache_clear()


def tweets_gateway(tokens: TokenIssuer) -> LocalHttpApi:
    configuration = {
        "FunctionName": "aviary-api-tweets",
        "FunctionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:aviary-api-tweets",
        "Timeout": 10,
    }
    routes = [
        route(key, tweets_api.handler, LambdaContext.for_function(configuration), 10.0)
        for key, group in ROUTES.items()
        if group == "tweets"
    ]
    return LocalHttpApi(
        routes, TokenVerifier(ISSUER, AUDIENCE, tokens.key_source), region=REGION, account=ACCOUNT
    )


IDEMPOTENCY_KEY = {"idempotency-key": "key-0123456789abcdef"}
UNKNOWN_TWEET = generate_ulid()
BAD_REQUESTS = {
    "not-json": ("POST /tweets", None, "this is not json", IDEMPOTENCY_KEY),
    "unknown-field": ("POST /tweets", None, '{"text": "hi", "mood": "happy"}', IDEMPOTENCY_KEY),
    "too-long": ("POST /tweets", None, json.dumps({"text": "x" * 281}), IDEMPOTENCY_KEY),
    "no-idempotency-key": ("POST /tweets", None, '{"text": "hi"}', {}),
    "bad-tweet-id": ("GET /tweets/{id}", {"id": "not-a-ulid"}, None, {}),
    "unknown-tweet": ("POST /tweets/{id}/like", {"id": UNKNOWN_TWEET}, None, {}),
}


@pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")
@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_input_through_the_local_api_gets_what_the_handler_answers_its_event(tweets_world, tokens, case):
    route_key, path, body, headers = BAD_REQUESTS[case]
    _method, _, template = route_key.partition(" ")
    url = template.replace("{id}", (path or {}).get("id", ""))

    async def scenario(client: TestClient) -> tuple[int, Any]:
        response = await client.request(
            route_key.split()[0],
            url,
            headers={**bearer(tokens), **headers, "Content-Type": "application/json"},
            data=body,
        )
        return await reply(response)

    through_gateway = serve(tweets_gateway(tokens), scenario)
    direct = tweets_api.handler(
        api_event(route_key, user="alice", path=path, raw_body=body, headers=headers),
        lambda_context("aviary-api-tweets"),
    )

    assert 400 <= through_gateway[0] < 500
    assert through_gateway == (direct["statusCode"], json.loads(direct["body"]))


@pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")
def test_a_tweet_posted_through_the_local_api_can_be_read_back_through_it(tweets_world, tokens):
    async def scenario(client: TestClient) -> tuple[tuple[int, Any], tuple[int, Any]]:
        posted = await reply(
            await client.post(
                "/tweets", headers={**bearer(tokens, "Bob"), **IDEMPOTENCY_KEY}, json={"text": "hello"}
            )
        )
        read = await reply(await client.get(f"/tweets/{posted[1]['id']}", headers=bearer(tokens)))
        return posted, read

    (status, tweet), read = serve(tweets_gateway(tokens), scenario)

    # The author is the token's sub (the tests' tokens use "sub-<username>"), never the spelling.
    assert (status, tweet["author"], tweet["text"]) == (201, "sub-Bob", "hello")
    assert read == (200, tweet)
