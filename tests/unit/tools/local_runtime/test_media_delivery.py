"""Media URLs served by the local front door from the regions' buckets (moto S3, in process): only
accepted media, its accepted bytes even in a region whose copy has another version ID, in the
front door's region order."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from botocore.exceptions import EndpointConnectionError
from moto import mock_aws

from aviary import naming
from aviary.clients import AWS_CONFIG
from aviary.ids import generate_ulid
from aviary.keys import media_object_key
from aviary.media import MediaStore
from aviary.media_urls import MEDIA_BASE_URL_VARIABLE, MediaUrls
from aviary.schema import MEDIA
from tools.local_aws.tables import create_table
from tools.local_runtime import media_delivery, region
from tools.local_runtime.front_door import build_app
from tools.local_runtime.media_delivery import CACHE_CONTROL, MediaReader, add_routes
from tools.local_runtime.replication import MediaReplication, ReplicationState
from tools.local_runtime.settings import load_local_settings

EAST, WEST = "us-east-1", "us-west-2"
OWNER = "3f1c2d4e-8a9b-4c7d-9e0f-1a2b3c4d5e6f"
PNG = b"\x89PNG\r\n\x1a\n" + b"accepted picture"
BASE_URL = "http://127.0.0.1:8080"


class Stage:
    """Each region's media table and versioned bucket in moto, and a front door's view of health."""

    def __init__(self, settings: Any, tmp_path: Any) -> None:
        self.account = settings.config.account
        self.regions = settings.regions
        assert self.regions == (EAST, WEST)
        self.clients = {
            (service, r): boto3.client(service, region_name=r, config=AWS_CONFIG)
            for service in ("dynamodb", "s3")
            for r in self.regions
        }
        for r in self.regions:
            create_table(self.client("dynamodb", r), MEDIA)
            location = {} if r == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": r}}
            self.client("s3", r).create_bucket(Bucket=self.bucket(r), **location)
            self.client("s3", r).put_bucket_versioning(
                Bucket=self.bucket(r), VersioningConfiguration={"Status": "Enabled"}
            )
        self.healthy = list(self.regions)
        self.replication = MediaReplication(
            self.regions, self.account, ReplicationState(tmp_path / "replication.sqlite"), self.client
        )

    def client(self, service: str, region_name: str) -> Any:
        return self.clients[(service, region_name)]

    def bucket(self, region_name: str) -> str:
        return naming.media_bucket_name(self.account, region_name)

    def store(self, region_name: str) -> MediaStore:
        return MediaStore(self.client("dynamodb", region_name), naming.table_name(MEDIA))

    def put(self, region_name: str, media_id: str, body: bytes, owner: str = OWNER) -> str:
        """A PUT to the upload URL: the version it stored."""
        return self.client("s3", region_name).put_object(
            Bucket=self.bucket(region_name),
            Key=media_object_key(owner, media_id),
            Body=body,
            ContentType="image/png",
        )["VersionId"]

    def upload(
        self, region_name: str = EAST, *, accepted: bool = True, owner: str = OWNER
    ) -> tuple[str, str]:
        """An upload to `region_name`'s bucket, its record in every region (tables replicate), accepted
        by the processor; the media ID and the version it pinned."""
        media_id = generate_ulid()
        for r in self.regions:
            self.store(r).record_pending(media_id, owner, "image/png", len(PNG), "2026-11-30T09:15:02.123Z")
        version = self.put(region_name, media_id, PNG, owner)
        if accepted:
            for r in self.regions:
                self.store(r).mark_ready(
                    media_id,
                    "image/png",
                    len(PNG),
                    sha256=hashlib.sha256(PNG).hexdigest(),
                    version_id=version,
                )
        return media_id, version

    def versions(self, region_name: str, media_id: str) -> list[str]:
        listed = self.client("s3", region_name).list_object_versions(
            Bucket=self.bucket(region_name), Prefix=media_object_key(OWNER, media_id)
        )
        return [v["VersionId"] for v in listed.get("Versions", [])]


@pytest.fixture
def stage(tmp_path):
    settings = load_local_settings({"AVIARY_LOCAL_STATE_DIR": str(tmp_path)})
    with mock_aws():
        yield Stage(settings, tmp_path)


def serve(stage: Stage, scenario: Callable[[TestClient], Awaitable[Any]]) -> Any:
    app = web.Application()
    add_routes(app, stage.account, lambda: stage.healthy, reader=MediaReader(stage.account, stage.client))

    async def run() -> Any:
        async with TestClient(TestServer(app)) as client:
            return await scenario(client)

    return asyncio.run(run())


def fetch(stage: Stage, url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one request for `url`, whatever its base: only its path and query count."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")

    async def scenario(client: TestClient) -> tuple[int, dict[str, str], bytes]:
        response = await client.request(method, target)
        return response.status, dict(response.headers), await response.read()

    return serve(stage, scenario)


def url(media_id: str, version: str | None = None, owner: str = OWNER) -> str:
    """The URL a tweet shows, as aviary.media_urls builds it."""
    return MediaUrls(BASE_URL).url(owner, media_id, version)


# -- what is served ---------------------------------------------------------------------------------------


def test_a_tweets_media_url_serves_the_accepted_bytes_from_the_first_healthy_region(stage):
    media_id, version = stage.upload(EAST)
    stage.replication.sync()

    status, headers, body = fetch(stage, url(media_id, version))

    assert (status, body) == (200, PNG)
    assert headers["Content-Type"] == "image/png"
    assert headers["Cache-Control"] == CACHE_CONTROL == "public, max-age=31536000, immutable"
    assert (headers["X-Aviary-Region"], headers["x-amz-version-id"]) == (EAST, version)


def test_head_answers_the_same_headers_without_the_bytes(stage):
    media_id, version = stage.upload(EAST)

    status, headers, body = fetch(stage, url(media_id, version), method="HEAD")

    assert (status, body) == (200, b"")
    assert headers["Content-Type"] == "image/png"
    assert headers["Content-Length"] == str(len(PNG))


def test_with_the_first_region_unhealthy_the_next_serves_its_copy_whose_version_id_differs(stage):
    media_id, version = stage.upload(EAST)
    assert stage.replication.sync() == 1
    [copy] = stage.versions(WEST, media_id)
    assert copy != version  # moto gives the copy its own version ID; S3 replication would keep it
    # A later PUT to the upload URL in the other region, not yet deleted by its processor.
    swapped = stage.put(WEST, media_id, b"\x89PNG\r\n\x1a\n" + b"swapped")
    stage.healthy = [WEST]

    status, headers, body = fetch(stage, url(media_id, version))

    assert (status, body) == (200, PNG)  # the accepted bytes, found by their SHA-256
    assert (headers["X-Aviary-Region"], headers["x-amz-version-id"]) == (WEST, copy)
    assert swapped in stage.versions(WEST, media_id)


def test_a_url_without_a_version_serves_the_accepted_version_not_a_later_one(stage):
    media_id, version = stage.upload(EAST)
    stage.put(EAST, media_id, b"GIF89a later upload")  # the newest version of the key now

    status, headers, body = fetch(stage, url(media_id))

    assert (status, body) == (200, PNG)
    assert headers["x-amz-version-id"] == version


def test_a_region_without_the_media_yet_passes_the_request_to_the_next_as_an_origin_group_does(stage):
    media_id, version = stage.upload(WEST)  # not yet copied to us-east-1

    status, headers, body = fetch(stage, url(media_id, version))

    assert (status, body, headers["X-Aviary-Region"]) == (200, PNG, WEST)


@pytest.mark.parametrize(
    "case", ["unknown", "pending", "rejected", "another-owner", "another-version", "not-an-id"]
)
def test_only_accepted_media_under_its_own_url_is_served(stage, case):
    media_id, version = stage.upload(EAST, accepted=case != "pending")
    if case == "rejected":
        media_id, version = stage.upload(EAST, accepted=False)
        for r in stage.regions:
            stage.store(r).mark_rejected(media_id, "its content is not a JPEG, PNG, GIF, WebP or MP4 file")
    # The same bytes stored under another owner's key: the record says whose upload it is.
    stage.put(EAST, media_id, PNG, owner="mallory")
    later = stage.put(EAST, media_id, PNG + b" again")
    requested = {
        "unknown": url(generate_ulid(), version),
        "pending": url(media_id, version),
        "rejected": url(media_id, version),
        "another-owner": url(media_id, version, owner="mallory"),
        "another-version": url(media_id, later),
        "not-an-id": f"{BASE_URL}/media/{OWNER}/not-a-media-id",
    }[case]

    status, headers, body = fetch(stage, requested)

    assert status == 404
    assert headers["Content-Type"].startswith("application/json")
    assert b'"code": "not_found"' in body or b'"code":"not_found"' in body
    assert PNG not in body


def test_no_healthy_region_is_a_503_to_retry(stage):
    media_id, version = stage.upload(EAST)
    stage.healthy = []

    status, headers, _ = fetch(stage, url(media_id, version))

    assert (status, headers["Retry-After"]) == (503, "2")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_media_is_read_by_get_and_head_only(stage, method):
    media_id, version = stage.upload(EAST)

    status, headers, _ = fetch(stage, url(media_id, version), method=method)

    assert (status, headers["Allow"]) == (405, "GET, HEAD")
    assert stage.versions(EAST, media_id) == [version]


class Unreachable:
    """A client whose every call fails as one to a region that does not answer."""

    def __getattr__(self, _name: str) -> Any:
        def call(**_kwargs: Any) -> Any:
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9")

        return call


def test_a_region_that_errs_is_passed_over_and_all_erring_is_a_503(stage):
    media_id, version = stage.upload(EAST)
    stage.replication.sync()
    stage.clients[("dynamodb", EAST)] = Unreachable()

    status, headers, body = fetch(stage, url(media_id, version))

    assert (status, body, headers["X-Aviary-Region"]) == (200, PNG, WEST)

    stage.clients[("s3", WEST)] = Unreachable()
    status, headers, _ = fetch(stage, url(media_id, version))

    assert (status, headers["Retry-After"]) == (503, "2")


# -- how the local stage reaches it ---------------------------------------------------------------------


def test_the_front_door_routes_media_urls_here_and_everything_else_to_the_regions(tmp_path):
    app = build_app(load_local_settings({"AVIARY_LOCAL_STATE_DIR": str(tmp_path)}))

    async def handler_of(method: str, path: str) -> Any:
        match = await app.router.resolve(make_mocked_request(method, path, app=app))
        return match.route.handler

    async def run() -> None:
        media = await handler_of("GET", f"/media/{OWNER}/{generate_ulid()}")
        assert getattr(media, "__self__", None).__class__ is media_delivery.MediaDelivery
        assert await handler_of("HEAD", f"/media/{OWNER}/{generate_ulid()}") == media
        # The upload route of the API is not a media URL, nor is anything else.
        for method, path in [("POST", "/media/uploads"), ("GET", "/timeline"), ("POST", "/tweets")]:
            assert (await handler_of(method, path)).__name__ == "forward"

    asyncio.run(run())


def test_the_local_runtime_points_media_urls_at_the_front_door(tmp_path):
    settings = load_local_settings(
        {"AVIARY_LOCAL_STATE_DIR": str(tmp_path), "AVIARY_LOCAL_FRONT_DOOR_PORT": "8310"}
    )
    deployed = {
        "AVIARY_TWEETS_TABLE": "aviary-tweets",
        MEDIA_BASE_URL_VARIABLE: "https://media.aviary.example.com",
    }

    shared = region.function_environment(settings, deployed)

    assert shared == {**deployed, MEDIA_BASE_URL_VARIABLE: "http://127.0.0.1:8310"}
    assert settings.media_base_url == settings.front_door_url
    host = region.timeline_host_settings(
        settings,
        EAST,
        {
            **shared,
            "AVIARY_TIMELINES_TABLE": "t",
            "AVIARY_SOCIAL_GRAPH_TABLE": "g",
            "AVIARY_COUNTS_TABLE": "c",
            "AVIARY_CELEBRITY_THRESHOLD": "10",
        },
    )
    assert host.media_base_url == "http://127.0.0.1:8310"
