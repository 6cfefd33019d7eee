"""Media URLs served by the local front door, standing in for CloudFront over the media buckets.

GET or HEAD /media/<owner>/<media_id>[?versionId=<version>], the URLs tweets show (aviary.media_urls),
is answered from the regions' moto buckets in the front door's order: the first healthy region
that holds the media serves it, as the distribution's origin group falls back to the next bucket
when the first has no object. Only accepted media is served: the region's media record must say
ready, name the owner and, if the URL pins a version, pin that one.

One emulation difference: S3 replication keeps an object's version ID in every bucket, but the
local runtime's copy (replication.py) gets a new one in the other region's moto bucket. So where
the pinned version is absent, the version whose SHA-256 is the record's accepted_sha256 is served:
the same bytes, under another version ID.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from boto3.exceptions import Boto3Error
from botocore.exceptions import BotoCoreError, ClientError

from aviary import clients, keys, naming
from aviary.errors import AviaryError, NotFound, ServiceUnavailable
from aviary.media import READY, MediaRecord, MediaStore, parse_media_key
from aviary.media_urls import VERSION_PARAMETER
from aviary.schema import MEDIA

log = logging.getLogger("aviary.local.media")

ROUTE = "/media/{owner}/{media_id}"
# What the distribution's cache policy keeps an accepted object for (stacks/components/
# media_distribution.py CACHE_DAYS): accepted media never changes, so a client may keep it as long.
CACHE_SECONDS = 365 * 24 * 60 * 60
CACHE_CONTROL = f"public, max-age={CACHE_SECONDS}, immutable"
ALLOWED_METHODS = "GET, HEAD"
_GONE = ("NoSuchKey", "NoSuchVersion")
# A region whose table or bucket cannot be read is passed over, as CloudFront passes over an
# origin that errs; the next healthy region is asked.
ORIGIN_FAILURES = (ClientError, BotoCoreError, Boto3Error)

ClientFor = Callable[[str, str], Any]  # (service, region) -> a boto3 client


@dataclass(frozen=True)
class MediaObject:
    """Accepted media as one region serves it."""

    body: bytes
    content_type: str
    version_id: str | None  # of the object served here (locally, a replica's differs from the pin)


def default_client_for(service: str, region: str) -> Any:
    # The front door runs with the local stage's AWS variables: S3 is moto, DynamoDB is DynamoDB Local.
    return clients.client(service, region=region)


class MediaReader:
    """Reads accepted media from one region's media table and bucket (blocking boto3 calls)."""

    def __init__(self, account: str, client_for: ClientFor = default_client_for) -> None:
        self.account = account
        self.client_for = client_for

    def read(self, region: str, owner: str, media_id: str, version: str | None) -> MediaObject | None:
        """The accepted bytes of `owner`'s media `media_id` in `region`, or None when that region has
        no accepted media by this URL (unknown, someone else's, not ready, another version, no bytes)."""
        key = keys.media_object_key(owner, media_id)
        if parse_media_key(key) != (owner, media_id):
            return None  # not a media key this service issues (the ID is no ULID)
        record = MediaStore(self.client_for("dynamodb", region), naming.table_name(MEDIA)).get(media_id)
        if record is None or record.status != READY or record.owner != owner or record.object_key != key:
            return None
        if version is not None and version != record.accepted_version:
            return None  # a version other than the accepted one is never served
        s3 = self.client_for("s3", region)
        bucket = naming.media_bucket_name(self.account, region)
        found = self._accepted(s3, bucket, record)
        if found is None:
            return None
        body, served_version = found
        return MediaObject(body, record.actual_type or record.declared_type, served_version)

    def _accepted(self, s3: Any, bucket: str, record: MediaRecord) -> tuple[bytes, str | None] | None:
        """(bytes, version ID) of the accepted version in `bucket`: the pinned version if it is there,
        else the version holding the accepted bytes (a local replica's own version ID)."""
        if record.accepted_version:
            body = _get(s3, bucket, record.object_key, record.accepted_version)
            if body is not None:
                return body, record.accepted_version
        if not record.accepted_sha256:
            return None
        for version_id in _versions(s3, bucket, record.object_key):
            body = _get(s3, bucket, record.object_key, version_id)
            if body is not None and hashlib.sha256(body).hexdigest() == record.accepted_sha256:
                return body, version_id
        return None


def _get(s3: Any, bucket: str, key: str, version_id: str) -> bytes | None:
    try:
        response = s3.get_object(Bucket=bucket, Key=key, VersionId=version_id)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in _GONE:
            return None
        raise
    return response["Body"].read()


def _versions(s3: Any, bucket: str, key: str) -> Iterator[str]:
    """The version IDs stored under exactly `key`, newest first (delete markers hold no bytes)."""
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key):
        for version in page.get("Versions", []):
            if version["Key"] == key:
                yield version["VersionId"]


def _error(error: AviaryError, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(error.to_body(), status=error.http_status, headers=headers)


class MediaDelivery:
    """The route's handlers over a reader and the front door's view of which regions are healthy."""

    def __init__(self, reader: MediaReader, healthy_regions: Callable[[], Sequence[str]]) -> None:
        self.reader = reader
        self.healthy_regions = healthy_regions

    async def get(self, request: web.Request) -> web.Response:
        """GET and HEAD (aiohttp answers HEAD with the same headers and no body)."""
        regions = list(self.healthy_regions())
        if not regions:
            return _error(
                ServiceUnavailable("No region is healthy to serve media from; retry shortly."),
                {"Retry-After": "2"},
            )
        owner, media_id = request.match_info["owner"], request.match_info["media_id"]
        version = request.query.get(VERSION_PARAMETER)  # the only parameter the distribution forwards
        loop = asyncio.get_running_loop()
        failed: list[str] = []
        for region in regions:
            try:
                found = await loop.run_in_executor(None, self.reader.read, region, owner, media_id, version)
            except ORIGIN_FAILURES as error:
                log.warning("reading media %s in %s failed: %s", media_id, region, error)
                failed.append(region)
                continue
            if found is not None:
                headers = {
                    "Content-Type": found.content_type,
                    "Cache-Control": CACHE_CONTROL,
                    "X-Aviary-Region": region,
                }
                if found.version_id:
                    headers["x-amz-version-id"] = found.version_id
                return web.Response(body=found.body, headers=headers)
        if len(failed) == len(regions):
            return _error(
                ServiceUnavailable(f"Media could not be read in {', '.join(failed)}; retry shortly."),
                {"Retry-After": "2"},
            )
        pinned = f" at version {version}" if version is not None else ""
        return _error(
            NotFound(
                f"No accepted media {media_id} of {owner}{pinned} exists; use a URL from a tweet's "
                "media_urls, once the upload has been accepted."
            )
        )

    async def method_not_allowed(self, _request: web.Request) -> web.Response:
        body = {"error": {"code": "method_not_allowed", "message": "Media is read by GET or HEAD only.",
                          "field": None}}  # fmt: skip
        return web.json_response(body, status=405, headers={"Allow": ALLOWED_METHODS})


def add_routes(
    app: web.Application,
    account: str,
    healthy_regions: Callable[[], Sequence[str]],
    *,
    reader: MediaReader | None = None,
) -> MediaDelivery:
    """Serve media URLs on `app`; call before any catch-all route, which would take them otherwise."""
    delivery = MediaDelivery(reader or MediaReader(account), healthy_regions)
    app.router.add_get(ROUTE, delivery.get)  # HEAD too
    app.router.add_route("*", ROUTE, delivery.method_not_allowed)
    return delivery
