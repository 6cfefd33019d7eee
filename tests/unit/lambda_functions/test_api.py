"""The API write-path handlers end to end: payload-2.0 events in, JSON out, against moto DynamoDB and S3.

Every route is driven through its real Lambda handler (lambda_functions.api.tweets/users/media), with
its services built on the first call from the environment, exactly as on a cold start.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType, SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import boto3
import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from aviary import clients
from aviary.clients import AWS_CONFIG
from aviary.counts import Counts
from aviary.handles import Handles
from aviary.ids import generate_ulid, is_ulid
from aviary.keys import media_object_key
from aviary.media import MediaStore
from aviary.schema import COUNTS, SOURCE_OF_TRUTH_TABLES
from aviary.validation import MEDIA_SIZE_CAPS, MIB
from lambda_functions.api import http
from lambda_functions.api import media as media_api
from lambda_functions.api import tweets as tweets_api
from lambda_functions.api import users as users_api
from tests.aws_fakes import use_fake_aws
from tests.graph_stream import count_graph_stream
from tests.unit.lambda_functions.handler_environment import HANDLER_ENVIRONMENT, MEDIA_BASE_URL
from tests.unit.lambda_functions.lambda_context import lambda_context
from tools.local_aws.api_events import ACCOUNT, NO_USER, REGION, api_event, user_id
from tools.local_aws.tables import create_tables

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

BUCKET = f"aviary-media-{ACCOUNT}-{REGION}"
CONTEXT = lambda_context("aviary-api")

TWEET_ROUTES = (
    "POST /tweets",
    "GET /tweets/{id}",
    "DELETE /tweets/{id}",
    "POST /tweets/{id}/retweet",
    "POST /tweets/{id}/like",
    "DELETE /tweets/{id}/like",
)
TWEET_ID_ROUTES = TWEET_ROUTES[1:]
USER_ROUTES = ("POST /users/{handle}/follow", "DELETE /users/{handle}/follow")
# The routes whose write is one TransactWriteItems.
TRANSACTION_ROUTES = (
    "POST /tweets",
    "POST /tweets/{id}/retweet",
    "POST /tweets/{id}/like",
    "DELETE /tweets/{id}/like",
    *USER_ROUTES,
)
MEDIA_ROUTES = ("POST /media/uploads",)
ROUTES: dict[str, ModuleType] = {
    **dict.fromkeys(TWEET_ROUTES, tweets_api),
    **dict.fromkeys(USER_ROUTES, users_api),
    **dict.fromkeys(MEDIA_ROUTES, media_api),
}
SUCCESS_STATUS = {
    "POST /tweets": 201,
    "POST /tweets/{id}/retweet": 201,
    "POST /media/uploads": 201,
}
ERROR_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    415: "unsupported_media_type",
    500: "internal_error",
    503: "service_unavailable",
}
TWEET_FIELDS = {
    "id",
    "author",
    "created_at",
    "text",
    "reply_to",
    "retweet_of",
    "media_ids",
    "media_urls",
    "like_count",
    "deleted",
    "original",
    "reply_to_deleted",
}
REPLAYED = "idempotent-replayed"
# The accounts every test starts with, each holding its handle (signed up before the test).
USERS = ("alice", "bob", "carol", "dave", "erin")
# DynamoDB calls that change something; patching them all proves a failed request wrote nothing.
WRITE_METHODS = ("transact_write_items", "put_item", "update_item", "delete_item", "batch_write_item")
READ_METHODS = ("get_item", "batch_get_item", "query", "transact_get_items")


def new_key() -> str:
    return f"key-{uuid.uuid4()}"


# -- responses ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: Any

    @property
    def error(self) -> dict[str, Any]:
        return self.body["error"]


def check_response(response: Any) -> Reply:
    """A handler response as API Gateway needs it; errors in the documented shape."""
    assert isinstance(response, dict)
    assert set(response) == {"statusCode", "headers", "body"}
    status, headers, raw = response["statusCode"], response["headers"], response["body"]
    assert isinstance(status, int)
    assert headers["content-type"] == "application/json"
    assert all(isinstance(name, str) and isinstance(value, str) for name, value in headers.items())
    assert isinstance(raw, str) and raw
    raw.encode("utf-8")  # the runtime must be able to send it: no lone surrogates
    body = json.loads(raw)
    if status >= 400:
        assert set(body) == {"error"}
        error = body["error"]
        assert set(error) == {"code", "message", "field"}
        assert error["code"] == ERROR_CODES[status]
        assert isinstance(error["message"], str) and error["message"]
        assert error["field"] is None or (isinstance(error["field"], str) and error["field"])
    if status == 503:
        assert int(headers["retry-after"]) > 0
    return Reply(status, headers, body)


def assert_error(reply: Reply, status: int, field: str | None) -> None:
    assert reply.status == status, reply.body
    assert reply.error["field"] == field, reply.error


# -- the world: moto tables and bucket, and the handlers pointed at them --------------------------------


class World:
    def __init__(self, dynamodb: Any, s3: Any, tables: dict[str, str]) -> None:
        self.dynamodb = dynamodb
        self.s3 = s3
        self.tables = tables
        self.seeded: Seeded | None = None  # what the property tests seeded, once per test

    def call(self, route_key: str, module: ModuleType | None = None, **event: Any) -> Reply:
        handler_module = module or ROUTES[route_key]
        return check_response(handler_module.handler(api_event(route_key, **event), CONTEXT))

    def items(self, role: str) -> list[dict[str, Any]]:
        return self.dynamodb.scan(TableName=self.tables[role], ConsistentRead=True)["Items"]

    def counts(self) -> dict[str, int]:
        """Item counts of every table and object versions in the bucket: unchanged means nothing written."""
        counts = {
            role: self.dynamodb.scan(TableName=name, Select="COUNT", ConsistentRead=True)["Count"]
            for role, name in self.tables.items()
        }
        versions = self.s3.list_object_versions(Bucket=BUCKET)
        counts["s3"] = len(versions.get("Versions", [])) + len(versions.get("DeleteMarkers", []))
        return counts

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        return {role: sorted(self.items(role), key=repr) for role in self.tables}

    def post(self, text: str = "hello", user: str = "alice", **fields: Any) -> dict[str, Any]:
        reply = self.call(
            "POST /tweets", user=user, body={"text": text, **fields}, headers={"idempotency-key": new_key()}
        )
        assert reply.status == 201, reply.body
        return reply.body

    def tweet(self, tweet_id: str, user: str = "alice") -> Reply:
        return self.call("GET /tweets/{id}", user=user, path={"id": tweet_id})

    def upload(self, user: str = "alice", content_type: str = "image/jpeg", size: int = 1234) -> str:
        reply = self.call("POST /media/uploads", user=user, body={"content_type": content_type, "size": size})
        assert reply.status == 201, reply.body
        return reply.body["media_id"]

    def ready_media(self, user: str = "alice", *, versioned: bool = True) -> str:
        """An upload the media processor accepted: as version `accepted_version(media_id)`, or (not
        `versioned`) from a bucket that does not version."""
        media_id = self.upload(user)
        store = MediaStore(self.dynamodb, self.tables["media"])
        version = accepted_version(media_id) if versioned else None
        assert store.mark_ready(media_id, "image/jpeg", 1234, sha256="0" * 64, version_id=version)
        return media_id

    def rejected_media(self, user: str = "alice") -> str:
        media_id = self.upload(user)
        store = MediaStore(self.dynamodb, self.tables["media"])
        assert store.mark_rejected(media_id, "its content is not a JPEG, PNG, GIF, WebP or MP4 file")
        return media_id

    def register(self, *usernames: str) -> None:
        """Sign-up: each account claims its handle (as its first request, or make token, would)."""
        handles = Handles(self.dynamodb, self.tables["social-graph"])
        for username in usernames:
            assert handles.claim(user_id(username), username.lower())

    def count_graph(self) -> None:
        """What this region's graph-stream consumer does: count the like and follow edges."""
        count_graph_stream(self.dynamodb, self.tables["social-graph"], self.tables["counts"], REGION)

    def graph_item(self, pk: str, sk: str) -> dict[str, Any] | None:
        key = {"pk": {"S": pk}, "sk": {"S": sk}}
        return self.dynamodb.get_item(TableName=self.tables["social-graph"], Key=key).get("Item")


def reset_handlers() -> None:
    """Forget the services the handlers built, so the next call builds them afresh (a cold start)."""
    for module in (tweets_api, users_api, media_api):
        module._settings.cache_clear()
        module._routes.cache_clear()
    http.handle_registry.cache_clear()


@pytest.fixture(scope="module")
def aws():
    """One moto for the module, and its clients, made once: building a boto3 client is the slow part."""
    with pytest.MonkeyPatch.context() as patch:
        # Module-scoped, so set up before tests/conftest.py's per-test fake AWS environment: its own.
        use_fake_aws(patch, REGION)
        for name, value in {**HANDLER_ENVIRONMENT, "AVIARY_MEDIA_BUCKET": BUCKET}.items():
            patch.setenv(name, value)
        # The handlers' clients are cached per process: start with none, so theirs are made inside
        # mock_aws, and put the cache back afterwards.
        patch.setattr(clients, "_clients", {})
        with mock_aws() as mock:
            # The test's own clients, apart from the handlers' (which tests make fail on purpose).
            dynamodb = boto3.client("dynamodb", region_name=REGION, config=AWS_CONFIG)
            s3 = boto3.client("s3", region_name=REGION, config=AWS_CONFIG)
            try:
                yield SimpleNamespace(mock=mock, dynamodb=dynamodb, s3=s3)
            finally:
                reset_handlers()


@pytest.fixture
def world(aws):
    """Empty tables and bucket, and handlers that build their services afresh on their next call."""
    aws.mock.reset()
    reset_handlers()
    tables = create_tables(aws.dynamodb, [*SOURCE_OF_TRUTH_TABLES, COUNTS])
    aws.s3.create_bucket(Bucket=BUCKET)
    aws.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    world = World(aws.dynamodb, aws.s3, tables)
    world.register(*USERS)
    return world


def test_the_routes_here_are_every_route_the_handlers_serve():
    served = {
        key
        for routes in (tweets_api.routes(None, None), users_api.routes(None, None), media_api.routes(None))
        for key in routes
    }
    assert served == set(ROUTES)


# -- POST /tweets ---------------------------------------------------------------------------------------


def test_post_tweet_returns_the_new_tweet(world):
    reply = world.call(
        "POST /tweets", user="alice", body={"text": "hello, world"}, headers={"idempotency-key": new_key()}
    )

    assert reply.status == 201
    assert REPLAYED not in reply.headers
    tweet = reply.body
    assert set(tweet) == TWEET_FIELDS
    assert is_ulid(tweet["id"])
    assert tweet["author"] == user_id("alice")  # the caller is the token's sub, never a username
    assert tweet["text"] == "hello, world"
    assert (tweet["reply_to"], tweet["retweet_of"], tweet["media_ids"], tweet["media_urls"]) == (
        None,
        None,
        [],
        [],
    )
    assert (tweet["like_count"], tweet["deleted"]) == (0, False)
    assert world.tweet(tweet["id"]).body == tweet
    assert world.counts() == {
        "tweets": 1, "social-graph": 2 * len(USERS), "idempotency": 1, "media": 0, "counts": 0, "s3": 0
    }  # fmt: skip


def test_post_tweet_normalises_text_to_nfc(world):
    tweet = world.post("cafe\u0301\tlatte\nplease")

    assert tweet["text"] == "caf\u00e9\tlatte\nplease"


def test_post_reply(world):
    original = world.post("first", user="bob")

    reply = world.post("a reply", reply_to=original["id"])

    assert reply["reply_to"] == original["id"]


@pytest.mark.parametrize("deleted", [False, True], ids=["missing", "deleted"])
def test_a_reply_to_a_missing_or_deleted_tweet_is_not_found(world, deleted):
    target = world.post("soon gone")["id"] if deleted else generate_ulid()
    if deleted:
        assert world.call("DELETE /tweets/{id}", path={"id": target}).status == 200
    before = world.counts()

    reply = world.call(
        "POST /tweets", body={"text": "hi", "reply_to": target}, headers={"idempotency-key": new_key()}
    )

    assert_error(reply, 404, "reply_to")
    assert world.counts() == before


def accepted_version(media_id: str) -> str:
    """The version ID a test's accepted upload has: S3's are opaque, and may need escaping in a URL."""
    return f"v+{media_id.lower()}/."


def test_post_with_ready_media(world):
    media = [world.ready_media(), world.ready_media(versioned=False), world.ready_media()]

    tweet = world.post("pictures", media_ids=media)

    assert tweet["media_ids"] == media
    owner = user_id("alice")
    # In media_ids' order, pinned to the accepted version where the bucket versions.
    assert tweet["media_urls"] == [
        f"{MEDIA_BASE_URL}/media/{owner}/{media[0]}?versionId={quote(accepted_version(media[0]), safe='')}",
        f"{MEDIA_BASE_URL}/media/{owner}/{media[1]}",
        f"{MEDIA_BASE_URL}/media/{owner}/{media[2]}?versionId={quote(accepted_version(media[2]), safe='')}",
    ]
    assert world.tweet(tweet["id"]).body == tweet
    # The versions are kept on the tweet: reading it asks nothing of the media table.
    [item] = world.items("tweets")
    assert item["media_versions"] == {
        "M": {media[0]: {"S": accepted_version(media[0])}, media[2]: {"S": accepted_version(media[2])}}
    }


def test_a_replayed_post_with_media_shows_the_same_pinned_urls(world):
    media = [world.ready_media()]
    key = new_key()
    first = world.call(
        "POST /tweets", body={"text": "pics", "media_ids": media}, headers={"idempotency-key": key}
    )

    again = world.call(
        "POST /tweets", body={"text": "pics", "media_ids": media}, headers={"idempotency-key": key}
    )

    assert (again.status, again.headers[REPLAYED]) == (201, "true")
    assert again.body == first.body
    assert again.body["media_urls"][0].endswith(f"?versionId={quote(accepted_version(media[0]), safe='')}")


def test_a_retweet_shows_its_originals_media_urls(world):
    original = world.post("look", user="bob", media_ids=[world.ready_media(user="bob")])

    retweet = world.call("POST /tweets/{id}/retweet", path={"id": original["id"]}).body

    assert retweet["media_ids"] == retweet["media_urls"] == []  # a retweet has no media of its own
    assert retweet["original"]["media_ids"] == original["media_ids"]
    assert retweet["original"]["media_urls"] == original["media_urls"]
    assert original["media_urls"][0].startswith(f"{MEDIA_BASE_URL}/media/{user_id('bob')}/")
    assert world.tweet(retweet["id"]).body["original"] == retweet["original"]


@pytest.mark.parametrize("state", ["someone-elses", "pending", "rejected", "unknown"])
def test_post_with_media_that_is_not_the_callers_ready_upload_is_refused(world, state):
    media_id = {
        "someone-elses": lambda: world.ready_media(user="bob"),
        "pending": lambda: world.upload(),
        "rejected": lambda: world.rejected_media(),
        "unknown": generate_ulid,
    }[state]()
    mine = world.ready_media()
    before = world.counts()

    reply = world.call(
        "POST /tweets",
        body={"text": "look", "media_ids": [mine, media_id]},
        headers={"idempotency-key": new_key()},
    )

    assert_error(reply, 400, "media_ids")
    assert media_id in reply.error["message"]
    assert world.counts() == before


def test_post_replayed_with_the_same_key_and_body_returns_the_same_tweet(world):
    key = new_key()
    first = world.call("POST /tweets", body={"text": "once"}, headers={"idempotency-key": key})
    before = world.counts()

    # The same request, its keys in another order and spaced differently, is the same request.
    again = world.call(
        "POST /tweets",
        raw_body='{ "media_ids" : null ,"text":"once"}',
        headers={"Idempotency-Key": key},
    )

    assert first.status == again.status == 201
    assert again.body == first.body
    assert again.headers[REPLAYED] == "true"
    assert world.counts() == before


def test_post_replay_still_answers_after_the_replied_to_tweet_is_deleted(world):
    original = world.post("parent", user="bob")
    key = new_key()
    body = {"text": "child", "reply_to": original["id"]}
    first = world.call("POST /tweets", body=body, headers={"idempotency-key": key})
    world.call("DELETE /tweets/{id}", user="bob", path={"id": original["id"]})

    again = world.call("POST /tweets", body=body, headers={"idempotency-key": key})

    assert (again.status, again.body, again.headers[REPLAYED]) == (201, first.body, "true")


def test_post_with_a_used_key_and_another_body_is_a_conflict(world):
    key = new_key()
    world.call("POST /tweets", body={"text": "once"}, headers={"idempotency-key": key})
    before = world.snapshot()

    reply = world.call("POST /tweets", body={"text": "twice"}, headers={"idempotency-key": key})

    assert_error(reply, 409, "Idempotency-Key")
    assert world.snapshot() == before


def test_idempotency_keys_belong_to_their_user(world):
    key = new_key()
    alices = world.call("POST /tweets", user="alice", body={"text": "hi"}, headers={"idempotency-key": key})
    bobs = world.call("POST /tweets", user="bob", body={"text": "hi"}, headers={"idempotency-key": key})

    assert alices.status == bobs.status == 201
    assert REPLAYED not in bobs.headers
    assert (alices.body["author"], bobs.body["author"]) == (user_id("alice"), user_id("bob"))
    assert alices.body["id"] != bobs.body["id"]


MANY_IDS = [generate_ulid() for _ in range(5)]

INVALID_POST_BODIES = [
    pytest.param({}, "text", id="text-missing"),
    pytest.param({"text": None}, "text", id="text-null"),
    pytest.param({"text": 5}, "text", id="text-number"),
    pytest.param({"text": ["hi"]}, "text", id="text-array"),
    pytest.param({"text": ""}, "text", id="text-empty"),
    pytest.param({"text": " \n\t "}, "text", id="text-blank"),
    pytest.param({"text": "x" * 281}, "text", id="text-too-long"),
    pytest.param({"text": "e\u0301" * 281}, "text", id="text-too-long-after-nfc"),
    pytest.param({"text": "a\u0000b"}, "text", id="text-control"),
    pytest.param({"text": "a\u001bb"}, "text", id="text-escape"),
    pytest.param({"text": "\ud83d"}, "text", id="text-lone-surrogate"),
    pytest.param({"text": "hi", "reply_to": "nope"}, "reply_to", id="reply-to-not-an-id"),
    pytest.param({"text": "hi", "reply_to": MANY_IDS[0].lower()}, "reply_to", id="reply-to-lower-case"),
    pytest.param({"text": "hi", "reply_to": 7}, "reply_to", id="reply-to-number"),
    pytest.param({"text": "hi", "media_ids": MANY_IDS[0]}, "media_ids", id="media-not-a-list"),
    pytest.param({"text": "hi", "media_ids": MANY_IDS}, "media_ids", id="media-too-many"),
    pytest.param({"text": "hi", "media_ids": [MANY_IDS[0]] * 2}, "media_ids", id="media-repeated"),
    pytest.param({"text": "hi", "media_ids": ["nope"]}, "media_ids", id="media-not-an-id"),
    pytest.param({"text": "hi", "media_ids": [None]}, "media_ids", id="media-null-item"),
    pytest.param({"text": "hi", "txt": "typo"}, "txt", id="unknown-field"),
    pytest.param({"text": "hi", "author": "bob"}, "author", id="acting-as-someone-else"),
]


@pytest.mark.parametrize(("body", "field"), INVALID_POST_BODIES)
def test_post_with_an_invalid_body_is_refused(world, body, field):
    before = world.counts()

    reply = world.call("POST /tweets", body=body, headers={"idempotency-key": new_key()})

    assert_error(reply, 400, field)
    assert world.counts() == before


NOT_AN_OBJECT = [
    pytest.param(None, id="no-body"),
    pytest.param("", id="empty"),
    pytest.param("[]", id="array"),
    pytest.param('["text"]', id="array-of-strings"),
    pytest.param('"hello"', id="string"),
    pytest.param("null", id="null"),
    pytest.param("1", id="number"),
    pytest.param("true", id="boolean"),
    pytest.param("{", id="truncated"),
    pytest.param("text=hello", id="form-encoded"),
    pytest.param('{"text": "a", "text": "b"}', id="repeated-key"),
    pytest.param('{"text": NaN}', id="nan"),
    pytest.param('{"text": "a", "reply_to": -Infinity}', id="infinity"),
    pytest.param('\ufeff{"text": "a"}', id="byte-order-mark"),
    pytest.param('{"text": "\ud83d"}', id="raw-lone-surrogate"),
    pytest.param('{"text": "' + "x" * (16 * 1024) + '"}', id="too-large"),
    pytest.param("[" * 5000 + "]" * 5000, id="too-deep"),
    pytest.param('{"text": ' + "9" * 5000 + "}", id="huge-number"),
]


@pytest.mark.parametrize("raw", NOT_AN_OBJECT)
@pytest.mark.parametrize("route_key", ["POST /tweets", "POST /media/uploads"])
def test_a_body_that_is_not_one_json_object_is_refused(world, route_key, raw):
    before = world.counts()

    reply = world.call(route_key, raw_body=raw, headers={"idempotency-key": new_key()})

    assert_error(reply, 400, "body")
    assert world.counts() == before


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="missing"),
        pytest.param({"idempotency-key": ""}, id="empty"),
        pytest.param({"idempotency-key": "short"}, id="too-short"),
        pytest.param({"idempotency-key": "k" * 65}, id="too-long"),
        pytest.param({"idempotency-key": "has spaces in it"}, id="spaces"),
        pytest.param({"idempotency-key": "ключ-ключ-ключ"}, id="not-ascii"),
        pytest.param({"idempotency-key": "key/../../etc"}, id="slashes"),
    ],
)
def test_post_without_a_valid_idempotency_key_is_refused(world, headers):
    before = world.counts()

    reply = world.call("POST /tweets", body={"text": "hi"}, headers=headers)

    assert_error(reply, 400, "Idempotency-Key")
    assert world.counts() == before


# -- base64 bodies --------------------------------------------------------------------------------------


def test_base64_bodies_are_decoded(world):
    tweet = world.call(
        "POST /tweets",
        body={"text": "encoded \u00e9\U0001f426"},
        base64_body=True,
        headers={"idempotency-key": new_key()},
    )
    upload = world.call(
        "POST /media/uploads", body={"content_type": "image/png", "size": 9}, base64_body=True
    )

    assert (tweet.status, tweet.body["text"]) == (201, "encoded \u00e9\U0001f426")
    assert upload.status == 201


@pytest.mark.parametrize(
    "encoded",
    [
        pytest.param("not base64!", id="not-base64"),
        pytest.param("eyJ0ZXh0IjoiaGkifQ", id="bad-padding"),
        pytest.param("eyJ0ZXh0Ijoi\u00e9In0=", id="non-ascii"),
        pytest.param(base64.b64encode(b'{"text": "\xff\xfe"}').decode(), id="not-utf8"),
        pytest.param(base64.b64encode(b"[1, 2]").decode(), id="not-an-object"),
        pytest.param("", id="empty"),
    ],
)
@pytest.mark.parametrize("route_key", ["POST /tweets", "POST /media/uploads"])
def test_a_bad_base64_body_is_refused(world, route_key, encoded):
    before = world.counts()

    reply = world.call(
        route_key, raw_body=encoded, is_base64_encoded=True, headers={"idempotency-key": new_key()}
    )

    assert_error(reply, 400, "body")
    assert world.counts() == before


# -- GET and DELETE /tweets/{id} ------------------------------------------------------------------------


def test_get_tweet_by_anyone(world):
    tweet = world.post("public")

    reply = world.tweet(tweet["id"], user="bob")

    assert (reply.status, reply.body) == (200, tweet)


def test_get_a_missing_tweet_is_not_found(world):
    assert_error(world.tweet(generate_ulid()), 404, "id")


def test_delete_own_tweet_leaves_a_tombstone(world):
    tweet = world.post("regrettable", media_ids=[world.ready_media()])

    reply = world.call("DELETE /tweets/{id}", path={"id": tweet["id"]})

    assert (reply.status, reply.body) == (200, {"id": tweet["id"], "deleted": True})
    assert_error(world.tweet(tweet["id"]), 404, "id")
    [item] = world.items("tweets")
    assert item["deleted"] == {"BOOL": True}
    assert "text" not in item and "media_ids" not in item and "media_versions" not in item
    # Deleting again is fine and changes nothing.
    before = world.snapshot()
    again = world.call("DELETE /tweets/{id}", path={"id": tweet["id"]})
    assert (again.status, again.body) == (200, {"id": tweet["id"], "deleted": True})
    assert world.snapshot() == before


def test_delete_someone_elses_tweet_is_forbidden(world):
    tweet = world.post("mine", user="bob")
    before = world.snapshot()

    reply = world.call("DELETE /tweets/{id}", user="alice", path={"id": tweet["id"]})

    assert_error(reply, 403, "id")
    assert world.snapshot() == before
    assert world.tweet(tweet["id"]).body == tweet


def test_delete_a_missing_tweet_is_not_found(world):
    before = world.counts()

    assert_error(world.call("DELETE /tweets/{id}", path={"id": generate_ulid()}), 404, "id")
    assert world.counts() == before


# -- retweet --------------------------------------------------------------------------------------------


def test_retweet_once_per_user(world):
    original = world.post("worth sharing", user="bob")

    first = world.call("POST /tweets/{id}/retweet", path={"id": original["id"]})
    before = world.counts()
    again = world.call(
        "POST /tweets/{id}/retweet", path={"id": original["id"]}, headers={"idempotency-key": new_key()}
    )

    assert first.status == 201
    assert REPLAYED not in first.headers
    assert set(first.body) == TWEET_FIELDS
    assert first.body["author"] == user_id("alice")
    assert first.body["retweet_of"] == original["id"]
    assert first.body["text"] == ""  # a retweet has no text of its own: it shows its original's
    assert first.body["original"] == {
        key: original[key] for key in ("id", "author", "created_at", "text", "media_ids", "media_urls")
    }
    assert first.body["id"] != original["id"]
    assert (again.status, again.body, again.headers[REPLAYED]) == (201, first.body, "true")
    assert world.counts() == before


def test_retweeting_a_retweet_retweets_the_original(world):
    original = world.post("source", user="bob")
    retweet = world.call("POST /tweets/{id}/retweet", user="carol", path={"id": original["id"]}).body

    reply = world.call("POST /tweets/{id}/retweet", path={"id": retweet["id"]})

    assert reply.status == 201
    assert reply.body["retweet_of"] == original["id"]


def test_a_retweet_of_a_deleted_tweet_is_gone_with_it_and_shows_no_text(world):
    original = world.post("soon regretted", user="bob")
    retweet = world.call("POST /tweets/{id}/retweet", user="carol", path={"id": original["id"]}).body
    assert world.tweet(retweet["id"]).body["original"]["text"] == "soon regretted"

    assert world.call("DELETE /tweets/{id}", user="bob", path={"id": original["id"]}).status == 200

    gone = world.tweet(retweet["id"])
    assert_error(gone, 404, "id")
    assert "soon regretted" not in json.dumps(gone.body)
    assert_error(world.call("POST /tweets/{id}/retweet", path={"id": retweet["id"]}), 404, "id")


def test_a_reply_shows_its_deleted_parent_as_deleted_and_keeps_its_text(world):
    parent = world.post("a question", user="bob")
    reply = world.post("an answer", reply_to=parent["id"])
    world.call("DELETE /tweets/{id}", user="bob", path={"id": parent["id"]})

    shown = world.tweet(reply["id"]).body
    assert (shown["text"], shown["reply_to"], shown["reply_to_deleted"]) == ("an answer", parent["id"], True)


@pytest.mark.parametrize("deleted", [False, True], ids=["missing", "deleted"])
def test_retweet_a_missing_or_deleted_tweet_is_not_found(world, deleted):
    target = world.post("gone", user="bob")["id"] if deleted else generate_ulid()
    if deleted:
        world.call("DELETE /tweets/{id}", user="bob", path={"id": target})
    before = world.counts()

    assert_error(world.call("POST /tweets/{id}/retweet", path={"id": target}), 404, "id")
    assert world.counts() == before


def test_retweet_with_a_malformed_idempotency_key_is_refused(world):
    original = world.post("x", user="bob")
    before = world.counts()

    reply = world.call(
        "POST /tweets/{id}/retweet", path={"id": original["id"]}, headers={"idempotency-key": "bad key"}
    )

    assert_error(reply, 400, "Idempotency-Key")
    assert world.counts() == before


# -- likes ----------------------------------------------------------------------------------------------


def test_like_and_unlike_repeated_change_nothing_more(world):
    tweet = world.post("likeable", user="bob")
    path = {"id": tweet["id"]}

    states = []
    for route_key, liked in [
        ("POST /tweets/{id}/like", True),
        ("POST /tweets/{id}/like", True),
        ("DELETE /tweets/{id}/like", False),
        ("DELETE /tweets/{id}/like", False),
    ]:
        before = world.snapshot()
        reply = world.call(route_key, path=path)
        assert (reply.status, reply.body) == (200, {"id": tweet["id"], "liked": liked})
        changed = world.snapshot() != before
        like = world.graph_item(f"TWEET#{tweet['id']}", f"LIKE#{user_id('alice')}") is not None
        world.count_graph()
        states.append((world.tweet(tweet["id"]).body["like_count"], like, changed))

    assert states == [(1, True, True), (1, True, False), (0, False, True), (0, False, False)]


def test_likes_from_several_users_add_up(world):
    tweet = world.post("popular", user="bob")

    for user in ("alice", "carol", "dave", "alice"):
        assert world.call("POST /tweets/{id}/like", user=user, path={"id": tweet["id"]}).status == 200

    world.count_graph()
    assert world.tweet(tweet["id"]).body["like_count"] == 3


@pytest.mark.parametrize("route_key", ["POST /tweets/{id}/like", "DELETE /tweets/{id}/like"])
@pytest.mark.parametrize("deleted", [False, True], ids=["missing", "deleted"])
def test_like_a_missing_or_deleted_tweet_is_not_found(world, route_key, deleted):
    target = world.post("gone", user="bob")["id"] if deleted else generate_ulid()
    if deleted:
        world.call("DELETE /tweets/{id}", user="bob", path={"id": target})
    before = world.snapshot()

    assert_error(world.call(route_key, path={"id": target}), 404, "id")
    assert world.snapshot() == before


BAD_TWEET_IDS = [
    pytest.param(None, id="missing"),
    pytest.param("", id="empty"),
    pytest.param("123", id="short"),
    pytest.param("01ARZ3NDEKTSV4RRFFQ69G5FAVX", id="27-chars"),
    pytest.param("01arz3ndektsv4rrffq69g5fav", id="lower-case"),
    pytest.param("01ARZ3NDEKTSV4RRFFQ69G5FAU", id="letter-u"),
    pytest.param("81ARZ3NDEKTSV4RRFFQ69G5FAV", id="out-of-range"),
    pytest.param("../../etc/passwd", id="path-traversal"),
    pytest.param("01ARZ3NDEKTSV4RRFFQ69G5FA\u0412", id="cyrillic"),
]


@pytest.mark.parametrize("tweet_id", BAD_TWEET_IDS)
@pytest.mark.parametrize("route_key", TWEET_ID_ROUTES)
def test_a_malformed_tweet_id_is_refused(world, route_key, tweet_id):
    world.post("something to leave alone")
    before = world.snapshot()

    reply = world.call(route_key, path=None if tweet_id is None else {"id": tweet_id})

    assert_error(reply, 400, "id")
    assert world.snapshot() == before


# -- follow and unfollow --------------------------------------------------------------------------------


def test_follow_and_unfollow_repeated_change_nothing_more(world):
    states = []
    for route_key, following in [
        ("POST /users/{handle}/follow", True),
        ("POST /users/{handle}/follow", True),
        ("DELETE /users/{handle}/follow", False),
        ("DELETE /users/{handle}/follow", False),
    ]:
        reply = world.call(route_key, user="alice", path={"handle": "Bob"})
        assert (reply.status, reply.body) == (
            200,
            {"handle": "bob", "user_id": user_id("bob"), "following": following},
        )
        world.count_graph()
        alice, bob = user_id("alice"), user_id("bob")
        states.append(
            (
                world.graph_item(f"USER#{alice}", f"FOLLOWS#{bob}") is not None,
                world.graph_item(f"USER#{bob}", f"FOLLOWER#{alice}") is not None,
                Counts(world.dynamodb, world.tables["counts"]).followers(bob),
            )
        )

    assert states == [(True, True, 1), (True, True, 1), (False, False, 0), (False, False, 0)]


@pytest.mark.parametrize("route_key", USER_ROUTES)
@pytest.mark.parametrize("handle", ["alice", "ALICE"])
def test_following_yourself_is_refused(world, route_key, handle):
    before = world.counts()

    reply = world.call(route_key, user="alice", path={"handle": handle})

    assert_error(reply, 400, "handle")
    assert world.counts() == before


@pytest.mark.parametrize("route_key", USER_ROUTES)
def test_following_a_handle_nobody_holds_is_not_found_naming_the_handle(world, route_key):
    before = world.counts()

    reply = world.call(route_key, path={"handle": "nobody_here"})

    assert_error(reply, 404, "handle")
    assert "nobody_here" in reply.body["error"]["message"]
    assert world.counts() == before


def test_an_account_whose_username_differs_only_by_case_is_another_account_without_the_handle(world):
    # "ALICE" signs up after alice: a different sub. It cannot act as alice, nor take her handle.
    tweet = world.post("mine", user="alice")

    assert_error(world.call("DELETE /tweets/{id}", user="ALICE", path={"id": tweet["id"]}), 403, "id")
    assert world.call("POST /users/{handle}/follow", user="ALICE", path={"handle": "bob"}).status == 200
    assert Handles(world.dynamodb, world.tables["social-graph"]).handle_of(user_id("ALICE")) is None
    assert world.call("POST /users/{handle}/follow", user="bob", path={"handle": "ALICE"}).status == 200
    bob = user_id("bob")
    assert world.graph_item(f"USER#{bob}", f"FOLLOWS#{user_id('alice')}") is not None
    assert world.graph_item(f"USER#{bob}", f"FOLLOWS#{user_id('ALICE')}") is None


def test_a_users_first_request_claims_their_handle_so_others_can_follow_them(world):
    assert_error(world.call("POST /users/{handle}/follow", path={"handle": "newcomer"}), 404, "handle")

    assert (
        world.call("POST /tweets/{id}/like", user="newcomer", path={"id": world.post("x")["id"]}).status
        == 200
    )

    assert world.call("POST /users/{handle}/follow", path={"handle": "NewComer"}).status == 200


@pytest.mark.parametrize(
    "handle",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param("a" * 16, id="too-long"),
        pytest.param("@bob", id="at-sign"),
        pytest.param("bob smith", id="space"),
        pytest.param("b\u00f6b", id="not-ascii"),
        pytest.param("bob#FOLLOWS", id="key-injection"),
    ],
)
@pytest.mark.parametrize("route_key", USER_ROUTES)
def test_a_malformed_handle_is_refused(world, route_key, handle):
    before = world.counts()

    reply = world.call(route_key, path=None if handle is None else {"handle": handle})

    assert_error(reply, 400, "handle")
    assert world.counts() == before


# -- media uploads --------------------------------------------------------------------------------------


def test_media_upload_returns_a_presigned_put(world):
    reply = world.call("POST /media/uploads", user="alice", body={"content_type": "IMAGE/PNG", "size": 2048})

    assert reply.status == 201
    upload = reply.body
    assert set(upload) == {"media_id", "upload_url", "expires_in", "method", "headers"}
    assert is_ulid(upload["media_id"])
    assert (upload["method"], upload["expires_in"]) == ("PUT", 300)
    assert upload["headers"] == {"Content-Type": "image/png"}
    url = urlsplit(upload["upload_url"])
    assert url.scheme == "https"
    assert BUCKET in url.netloc + url.path
    assert url.path.endswith("/" + media_object_key(user_id("alice"), upload["media_id"]))
    signed = parse_qs(url.query)["X-Amz-SignedHeaders"][0].split(";")
    assert {"content-type", "content-length"} <= set(signed)
    [record] = world.items("media")
    assert record["media_id"] == {"S": upload["media_id"]}
    assert record["owner"] == {"S": user_id("alice")}
    assert record["status"] == {"S": "pending"}
    assert (record["declared_type"], record["declared_size"]) == ({"S": "image/png"}, {"N": "2048"})
    assert world.counts()["s3"] == 0  # the client PUTs the bytes itself


@pytest.mark.parametrize("content_type", sorted(MEDIA_SIZE_CAPS))
def test_media_upload_accepts_each_type_up_to_its_cap(world, content_type):
    reply = world.call(
        "POST /media/uploads", body={"content_type": content_type, "size": MEDIA_SIZE_CAPS[content_type]}
    )

    assert reply.status == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"size": 10}, "content_type", id="type-missing"),
        pytest.param({"content_type": None, "size": 10}, "content_type", id="type-null"),
        pytest.param({"content_type": 5, "size": 10}, "content_type", id="type-number"),
        pytest.param({"content_type": "image/bmp", "size": 10}, "content_type", id="type-bmp"),
        pytest.param({"content_type": "text/html", "size": 10}, "content_type", id="type-html"),
        pytest.param({"content_type": "image/jpeg; q=1", "size": 10}, "content_type", id="type-params"),
        pytest.param({"content_type": "", "size": 10}, "content_type", id="type-empty"),
        pytest.param({"content_type": "image/jpeg"}, "size", id="size-missing"),
        pytest.param({"content_type": "image/jpeg", "size": None}, "size", id="size-null"),
        pytest.param({"content_type": "image/jpeg", "size": 0}, "size", id="size-zero"),
        pytest.param({"content_type": "image/jpeg", "size": -1}, "size", id="size-negative"),
        pytest.param({"content_type": "image/jpeg", "size": 5 * MIB + 1}, "size", id="size-over-image-cap"),
        pytest.param({"content_type": "video/mp4", "size": 50 * MIB + 1}, "size", id="size-over-video-cap"),
        pytest.param({"content_type": "image/jpeg", "size": 1.5}, "size", id="size-fraction"),
        pytest.param({"content_type": "image/jpeg", "size": "10"}, "size", id="size-string"),
        pytest.param({"content_type": "image/jpeg", "size": True}, "size", id="size-boolean"),
        pytest.param({"content_type": "image/jpeg", "size": 10, "owner": "bob"}, "owner", id="unknown-field"),
    ],
)
def test_media_upload_with_an_invalid_body_is_refused(world, body, field):
    reply = world.call("POST /media/uploads", body=body)

    assert_error(reply, 400, field)
    assert world.counts()["media"] == 0


# -- authorization --------------------------------------------------------------------------------------


def valid_request(world: World, route_key: str) -> dict[str, Any]:
    """Event arguments that make route_key succeed for alice (seeding whatever it needs)."""
    if route_key == "POST /tweets":
        return {"body": {"text": "hi"}, "headers": {"idempotency-key": new_key()}}
    if route_key == "POST /media/uploads":
        return {"body": {"content_type": "image/png", "size": 10}}
    if route_key in USER_ROUTES:
        if route_key.startswith("DELETE"):
            assert world.call("POST /users/{handle}/follow", path={"handle": "bob"}).status == 200
        return {"path": {"handle": "bob"}}
    tweet = world.post("target", user="alice" if route_key == "DELETE /tweets/{id}" else "bob")
    if route_key == "DELETE /tweets/{id}/like":
        assert world.call("POST /tweets/{id}/like", path={"id": tweet["id"]}).status == 200
    return {"path": {"id": tweet["id"]}}


BODY_ROUTES = ("POST /tweets", "POST /media/uploads")


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=latin-1",
        "application/jsonp",
        "",
    ],
)
@pytest.mark.parametrize("route_key", BODY_ROUTES)
def test_a_body_route_takes_json_only_and_says_so_with_415(world, route_key, content_type):
    request = valid_request(world, route_key)
    headers = {**request.get("headers", {}), "content-type": content_type}
    before = world.counts()

    reply = world.call(route_key, **{**request, "headers": headers})

    assert_error(reply, 415, "Content-Type")
    assert "application/json" in reply.body["error"]["message"]
    assert world.counts() == before


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "Application/JSON",
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
    ],
)
@pytest.mark.parametrize("route_key", BODY_ROUTES)
def test_a_body_route_takes_json_with_or_without_a_utf8_charset(world, route_key, content_type):
    request = valid_request(world, route_key)
    headers = {**request.get("headers", {}), "content-type": content_type}

    assert world.call(route_key, **{**request, "headers": headers}).status == SUCCESS_STATUS[route_key]


@pytest.mark.parametrize("body", ["{}", "x", " "])
@pytest.mark.parametrize("route_key", [key for key in ROUTES if key not in BODY_ROUTES])
def test_a_route_that_takes_no_body_refuses_one(world, route_key, body):
    request = valid_request(world, route_key)
    before = world.counts()

    reply = world.call(route_key, **request, raw_body=body)

    assert_error(reply, 400, "body")
    assert world.counts() == before


NOT_SIGNED_IN = {
    "no-authorizer": {"user": NO_USER},
    "no-claims": {"claims": {}},
    "no-username-claim": {"claims": {"sub": "3f1c2d4e-8a9b-4c7d-9e0f-1a2b3c4d5e6f", "username": "alice"}},
    "empty-username": {"user": ""},
    "null-username": {"user": None},
    "number-username": {"user": 42},
    "list-username": {"user": ["alice"]},
}


@pytest.mark.parametrize("route_key", list(ROUTES))
def test_a_request_without_a_signed_in_user_is_unauthorized(world, route_key):
    request = valid_request(world, route_key)
    before = world.snapshot()

    for case, credentials in NOT_SIGNED_IN.items():
        reply = world.call(route_key, **request, **credentials)
        assert (case, reply.status, reply.error["field"]) == (case, 401, "Authorization")

    assert world.snapshot() == before


@pytest.mark.parametrize("username", ["not/a/handle", "alice@example.com", "x" * 16, "b\u00f6b", "alice\n"])
def test_a_username_that_is_not_a_handle_acts_as_its_own_account_and_claims_no_handle(world, username):
    graph_before = world.items("social-graph")

    reply = world.call(
        "POST /tweets", user=username, body={"text": "hi"}, headers={"idempotency-key": new_key()}
    )

    assert (reply.status, reply.body["author"]) == (201, user_id(username))
    assert world.items("social-graph") == graph_before


@pytest.mark.parametrize("route_key", list(ROUTES))
def test_every_route_succeeds_for_a_signed_in_user(world, route_key):
    reply = world.call(route_key, **valid_request(world, route_key))

    assert reply.status == SUCCESS_STATUS.get(route_key, 200), reply.body


# -- unknown routes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "route_key"),
    [
        (tweets_api, "PATCH /tweets/{id}"),
        (tweets_api, "GET /tweets"),
        (tweets_api, "post /tweets"),
        (tweets_api, "POST /media/uploads"),
        (users_api, "GET /users/{handle}/follow"),
        (users_api, "POST /tweets"),
        (media_api, "GET /media/uploads"),
        (media_api, "$default"),
        (media_api, ""),
    ],
)
def test_an_unknown_route_is_not_found(world, module, route_key):
    before = world.counts()

    reply = world.call(
        route_key,
        module=module,
        path={"id": generate_ulid(), "handle": "bob"},
        body={"text": "hi", "content_type": "image/png", "size": 1},
        headers={"idempotency-key": new_key()},
    )

    assert_error(reply, 404, None)
    assert world.counts() == before


def test_an_event_without_a_route_key_is_not_found(world):
    event = api_event("POST /tweets", body={"text": "hi"}, headers={"idempotency-key": new_key()})
    del event["routeKey"]

    reply = check_response(tweets_api.handler(event, CONTEXT))

    assert_error(reply, 404, None)
    assert world.counts()["tweets"] == 0


# -- DynamoDB throttling, timeouts and failures ---------------------------------------------------------


def client_error(code: str, operation: str = "TransactWriteItems", **extra: Any) -> ClientError:
    return ClientError(
        {
            "Error": {
                "Code": code,
                "Message": "The level of configured provisioned throughput was exceeded.",
            },
            "ResponseMetadata": {"HTTPStatusCode": 400},
            **extra,
        },
        operation,
    )


def cancelled(*reasons: str) -> ClientError:
    return client_error(
        "TransactionCanceledException", CancellationReasons=[{"Code": reason} for reason in reasons]
    )


@contextmanager
def failing(methods: tuple[str, ...], error: Exception) -> Iterator[list[str]]:
    """The handlers' DynamoDB client raises `error` from `methods`; yields the calls it refused."""
    client = clients.client("dynamodb")  # the cached client the handlers build their services on
    refused: list[str] = []

    def fail(name: str) -> Callable[..., Any]:
        def raise_error(**_kwargs: Any) -> Any:
            refused.append(name)
            raise error

        return raise_error

    with pytest.MonkeyPatch.context() as patch:
        for method in methods:
            patch.setattr(client, method, fail(method))
        yield refused


def failing_methods(route_key: str) -> tuple[str, ...]:
    # GET only reads; every other route fails at its write, after its reads succeeded.
    return READ_METHODS if route_key.startswith("GET") else WRITE_METHODS


def endpoint_error(error_class: type[Exception]) -> Exception:
    return error_class(endpoint_url=f"https://dynamodb.{REGION}.amazonaws.com/")


TRANSIENT_ERRORS = [
    pytest.param(lambda: client_error("ProvisionedThroughputExceededException"), id="provisioned-throughput"),
    pytest.param(lambda: client_error("ThrottlingException"), id="throttling"),
    pytest.param(lambda: client_error("RequestLimitExceeded"), id="request-limit"),
    pytest.param(lambda: client_error("InternalServerError"), id="internal-server-error"),
    pytest.param(lambda: endpoint_error(ReadTimeoutError), id="read-timeout"),
    pytest.param(lambda: endpoint_error(ConnectTimeoutError), id="connect-timeout"),
    pytest.param(lambda: endpoint_error(EndpointConnectionError), id="refused"),
]


@pytest.mark.parametrize("make_error", TRANSIENT_ERRORS)
@pytest.mark.parametrize("route_key", list(ROUTES))
def test_throttling_and_timeouts_ask_for_a_retry_and_write_nothing(world, route_key, make_error):
    request = valid_request(world, route_key)
    before = world.snapshot()

    with failing(failing_methods(route_key), make_error()) as refused:
        reply = world.call(route_key, **request)

    assert refused, "the injected failure was never reached"
    assert_error(reply, 503, None)
    assert reply.headers["retry-after"] == "2"
    assert world.snapshot() == before


@pytest.mark.parametrize(
    "reasons",
    [
        pytest.param(("TransactionConflict", "None", "None"), id="conflict"),
        pytest.param(("None", "ThrottlingError", "None"), id="throttled-item"),
        pytest.param(("None", "None", "ProvisionedThroughputExceeded"), id="provisioned-throughput"),
    ],
)
@pytest.mark.parametrize("route_key", TRANSACTION_ROUTES)
def test_a_transaction_cancelled_by_contention_asks_for_a_retry(world, route_key, reasons):
    # Concurrent likes of one popular tweet conflict on its counter: that means "retry", not a bug.
    request = valid_request(world, route_key)
    before = world.snapshot()

    with failing(("transact_write_items",), cancelled(*reasons)) as refused:
        reply = world.call(route_key, **request)

    assert refused
    assert_error(reply, 503, None)
    assert reply.headers["retry-after"] == "2"
    assert world.snapshot() == before


def test_a_new_tweets_id_taken_by_a_race_asks_for_a_retry(world):
    # Its condition failed while the idempotency record's held: the domain has no answer, a retry
    # draws another ID. A cancelled transaction is never a 500.
    with failing(("transact_write_items",), cancelled("None", "ConditionalCheckFailed")) as refused:
        reply = world.call("POST /tweets", body={"text": "hi"}, headers={"idempotency-key": new_key()})

    assert refused
    assert_error(reply, 503, None)


@pytest.mark.parametrize("route_key", list(ROUTES))
def test_an_unexpected_aws_error_is_an_internal_error_that_leaks_nothing(world, route_key):
    request = valid_request(world, route_key)
    before = world.snapshot()
    secret = "User: arn:aws:sts::123456789012:assumed-role/aviary-api is not authorized"
    error = ClientError({"Error": {"Code": "AccessDeniedException", "Message": secret}}, "TransactWriteItems")

    with failing(failing_methods(route_key), error):
        reply = world.call(route_key, **request)

    assert_error(reply, 500, None)
    assert "arn:aws" not in reply.body["error"]["message"]
    assert world.snapshot() == before


def test_a_post_throttled_then_retried_with_its_key_is_posted_once(world):
    key = new_key()
    with failing(WRITE_METHODS, client_error("ProvisionedThroughputExceededException")):
        throttled = world.call("POST /tweets", body={"text": "retry me"}, headers={"idempotency-key": key})

    retried = world.call("POST /tweets", body={"text": "retry me"}, headers={"idempotency-key": key})
    again = world.call("POST /tweets", body={"text": "retry me"}, headers={"idempotency-key": key})

    assert throttled.status == 503
    assert (retried.status, again.status) == (201, 201)
    assert REPLAYED not in retried.headers and again.headers[REPLAYED] == "true"
    assert again.body == retried.body
    assert world.counts()["tweets"] == 1


# -- property-based: no input makes a 5xx ---------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)
ULIDS = st.from_regex(r"[0-7][0-9A-HJKMNP-TV-Z]{25}", fullmatch=True)
HANDLES = st.from_regex(r"[A-Za-z0-9_]{1,15}", fullmatch=True)
KEYS = st.from_regex(r"[A-Za-z0-9_-]{8,64}", fullmatch=True)
BODY_FIELDS = {
    "POST /tweets": ("text", "reply_to", "media_ids"),
    "POST /media/uploads": ("content_type", "size"),
}
PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@dataclass
class Seeded:
    """Real IDs, users and keys, so generated requests also reach the paths past validation."""

    tweet_ids: list[str]
    media_ids: list[str]
    users: list[str]
    keys: list[str]


def seed(world: World) -> Seeded:
    key = new_key()
    world.call("POST /tweets", body={"text": "seed"}, headers={"idempotency-key": key})
    alices = world.post("by alice", media_ids=[world.ready_media()])
    bobs = world.post("by bob", user="bob")
    retweet = world.call("POST /tweets/{id}/retweet", user="bob", path={"id": alices["id"]}).body
    gone = world.post("deleted", user="bob")
    world.call("DELETE /tweets/{id}", user="bob", path={"id": gone["id"]})
    world.call("POST /tweets/{id}/like", path={"id": bobs["id"]})
    world.call("POST /users/{handle}/follow", path={"handle": "bob"})
    return Seeded(
        tweet_ids=[alices["id"], bobs["id"], retweet["id"], gone["id"]],
        media_ids=[
            world.ready_media(),
            world.upload(),
            world.ready_media(user="bob"),
            world.rejected_media(),
        ],
        users=["alice", "bob", "carol", "Alice"],
        keys=[key],
    )


def pick(data: st.DataObject, label: str, **weights: int) -> str:
    """One of the weights' names, drawn in proportion to them, so most requests get past validation."""
    return data.draw(
        st.sampled_from([name for name, weight in weights.items() for _ in range(weight)]), label
    )


def field_values(seeded: Seeded) -> dict[str, st.SearchStrategy[Any]]:
    """Each body field: usually plausible (seeded IDs, allowed types), sometimes any JSON at all."""
    media_id = st.sampled_from(seeded.media_ids) | ULIDS | JSON_VALUES
    return {
        "text": st.text(min_size=1, max_size=280) | st.text(max_size=300) | JSON_VALUES,
        "reply_to": st.sampled_from(seeded.tweet_ids) | ULIDS | st.none() | JSON_VALUES,
        "media_ids": st.lists(media_id, max_size=5)
        | st.lists(st.sampled_from(seeded.media_ids))
        | JSON_VALUES,
        "content_type": st.sampled_from([*MEDIA_SIZE_CAPS, "IMAGE/PNG", "image/bmp"]) | st.text(max_size=20),
        "size": st.integers(min_value=1, max_value=5 * MIB)
        | st.integers(min_value=-1, max_value=60 * MIB)
        | st.integers()
        | JSON_VALUES,
    }


def draw_body(data: st.DataObject, route_key: str, seeded: Seeded) -> dict[str, Any]:
    """Event arguments for a body: an object of the route's fields, any JSON, any string, or none."""
    kind = pick(data, "body kind", fields=5, json=1, raw=1, none=1)
    if kind == "none":
        return {}
    if kind == "json":
        text = json.dumps(data.draw(JSON_VALUES, label="json"))
    elif kind == "fields":
        values = field_values(seeded)
        names = BODY_FIELDS.get(route_key, ())
        # Always the fields a request cannot do without (any JSON for "json" covers their absence).
        required = {name: values[name] for name in names if name in ("text", "content_type", "size")}
        optional = {name: values[name] for name in names if name not in required}
        body = data.draw(st.fixed_dictionaries(required, optional=optional), label="fields")
        if pick(data, "extra fields", no=4, yes=1) == "yes":
            body.update(
                data.draw(st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=2), label="extra")
            )
        text = json.dumps(body, ensure_ascii=data.draw(st.booleans(), label="ascii"))
    else:
        text = data.draw(st.text(max_size=200), label="raw")
    encoding = pick(data, "encoding", plain=6, base64=2, flag_only=1)
    if encoding == "base64":
        return {"raw_body": text, "base64_body": True}
    return {"raw_body": text, "is_base64_encoded": encoding == "flag_only"}


def draw_path(data: st.DataObject, route_key: str, seeded: Seeded) -> dict[str, Any] | None:
    name, seeded_values, valid = (
        ("id", seeded.tweet_ids, ULIDS) if "{id}" in route_key else ("handle", seeded.users, HANDLES)
    )
    kind = pick(data, "path kind", seeded=4, valid=2, text=1, none=1, other=1)
    if kind == "none":
        return None
    if kind == "other":
        return data.draw(st.dictionaries(st.text(max_size=8), st.text(max_size=30)), label="path")
    value = {"seeded": st.sampled_from(seeded_values), "valid": valid, "text": st.text(max_size=30)}[kind]
    return {name: data.draw(value, label=name)}


def draw_request(data: st.DataObject, route_key: str, seeded: Seeded) -> dict[str, Any]:
    path = draw_path(data, route_key, seeded) if "{" in route_key else None
    user = {
        "seeded": st.sampled_from(seeded.users),
        "handle": HANDLES,
        "text": st.text(max_size=20),
        "json": JSON_VALUES,
        "absent": st.just(NO_USER),
    }[pick(data, "user kind", seeded=6, handle=1, text=1, json=1, absent=1)]
    key = {
        "fresh": KEYS,
        "seeded": st.sampled_from(seeded.keys),
        "text": st.text(max_size=70),
        "absent": st.none(),
    }[pick(data, "key kind", fresh=4, seeded=1, text=1, absent=1)]
    headers = data.draw(
        st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=2), label="headers"
    )
    idempotency_key = data.draw(key, label="idempotency-key")
    if idempotency_key is not None:
        headers["idempotency-key"] = idempotency_key
    return {
        "path": path,
        "user": data.draw(user, label="user"),
        "headers": headers,
        **draw_body(data, route_key, seeded),
    }


@pytest.mark.parametrize("route_key", list(ROUTES))
@PROPERTY_SETTINGS
@given(data=st.data())
def test_no_request_makes_a_server_error(world, route_key, data):
    if world.seeded is None:  # once per test: the tables outlive the examples
        world.seeded = seed(world)
    request = draw_request(data, route_key, world.seeded)
    before = world.counts()

    reply = world.call(route_key, **request)

    event(f"{reply.status} {reply.body['error']['field'] if reply.status >= 400 else ''}")
    assert reply.status < 500, reply.body  # 503 too: no throttling is injected
    if reply.status >= 400:
        assert world.counts() == before, "a refused request wrote something"
    else:
        assert reply.status == SUCCESS_STATUS.get(route_key, 200)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    module=st.sampled_from([tweets_api, users_api, media_api]),
    route_key=st.text(max_size=40),
    user=st.sampled_from(["alice", "bob"]) | st.text(max_size=20),
)
def test_no_route_key_makes_a_server_error(world, module, route_key, user):
    reply = world.call(route_key, module=module, user=user, body={"text": "hi"})

    assert reply.status < 500, reply.body
    if route_key not in {
        **tweets_api.routes(None, None),
        **users_api.routes(None, None),
        **media_api.routes(None),
    }:
        assert reply.status in (400, 401, 404)
