"""Uploaded media: presigned PUTs straight to S3, then a verdict on each object by its content.

Records move pending -> ready or rejected exactly once; only ready media can go on a tweet.
Accepted media cannot be swapped: the record pins the accepted object version and the SHA-256 of
its bytes, and any other version stored under the key later (the upload URL stays valid for
minutes) is deleted, while the accepted one stays. A replica holds the same bytes, so it is kept.
This needs a versioned bucket: a later PUT to an unversioned one would overwrite the accepted bytes.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from botocore.exceptions import ClientError

from aviary import keys, validation
from aviary.batches import BatchIncomplete, UnprocessedRetries, batch_get_items
from aviary.errors import Conflict, ServiceUnavailable, ValidationError
from aviary.ids import RANDOM_BYTES, is_ulid, new_ulid, utc_timestamp
from aviary.validation import MEDIA_SIZE_CAPS

logger = logging.getLogger(__name__)

PENDING = "pending"
READY = "ready"
REJECTED = "rejected"
IGNORED = "ignored"  # a processing outcome only: the object is not an upload this service issued

HEAD_BYTES = 16  # enough for every signature sniff_content_type knows

# An ISO BMFF ftyp box is 8 header bytes, a 4-byte major brand, a 4-byte minor version and
# whole 4-byte compatible brands; real files list a handful, so a large size means it is not one.
_FTYP_MIN_SIZE = 16
_FTYP_MAX_SIZE = 1024
# HEIF and AVIF are still images in the same container: declared as video/mp4 they would not play.
_STILL_IMAGE_BRANDS = frozenset({b"mif1", b"msf1", b"heic", b"heix", b"hevc", b"hevx", b"avif", b"avis"})

_MEDIA_KEY = re.compile(rf"{re.escape(keys.MEDIA_KEY_PREFIX)}([^/]+)/([^/]+)")
# Few: a client posting a tweet is better told to retry than kept waiting.
_BATCH_GET_ATTEMPTS = 3


def sniff_content_type(first_bytes: bytes) -> str | None:
    """The media type the leading bytes prove (JPEG, PNG, GIF, WebP or MP4), else None."""
    head = bytes(first_bytes[:HEAD_BYTES])
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        box_size = int.from_bytes(head[:4], "big")
        plausible = _FTYP_MIN_SIZE <= box_size <= _FTYP_MAX_SIZE and box_size % 4 == 0
        if plausible and head[8:12] not in _STILL_IMAGE_BRANDS:
            return "video/mp4"
    return None


def parse_media_key(key: str) -> tuple[str, str] | None:
    """(owner, media_id) of an object key of the form media/<owner>/<ULID>, else None."""
    match = _MEDIA_KEY.fullmatch(key)
    if match is None or not is_ulid(match.group(2)):
        return None
    return match.group(1), match.group(2)


@dataclass(frozen=True)
class MediaRecord:
    """One upload as the media table holds it."""

    media_id: str
    owner: str
    declared_type: str
    declared_size: int
    status: str
    created_at: str
    object_key: str
    actual_type: str | None = None
    actual_size: int | None = None
    reason: str | None = None
    accepted_version: str | None = None  # the object version accepted, where the bucket versions
    accepted_sha256: str | None = None  # of the accepted bytes: a replica's match, a swap's do not

    @classmethod
    def from_item(cls, item: dict[str, dict[str, Any]]) -> MediaRecord:
        actual_size = item.get("actual_size", {}).get("N")
        return cls(
            media_id=item["media_id"]["S"],
            owner=item["owner"]["S"],
            declared_type=item["declared_type"]["S"],
            declared_size=int(item["declared_size"]["N"]),
            status=item["status"]["S"],
            created_at=item["created_at"]["S"],
            object_key=item["object_key"]["S"],
            actual_type=item.get("actual_type", {}).get("S"),
            actual_size=None if actual_size is None else int(actual_size),
            reason=item.get("reason", {}).get("S"),
            accepted_version=item.get("accepted_version", {}).get("S"),
            accepted_sha256=item.get("accepted_sha256", {}).get("S"),
        )

    def to_json(self) -> dict[str, Any]:
        """The API's representation of an upload's state."""
        return {
            "id": self.media_id,
            "content_type": self.declared_type,
            "size": self.declared_size,
            "status": self.status,
            "reason": self.reason,
            "created_at": self.created_at,
        }


def _error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


class MediaStore:
    """The media table: pending records, one-way transitions to ready or rejected, and checks."""

    def __init__(
        self, dynamodb_client: Any, media_table: str, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._dynamodb = dynamodb_client
        self._table = media_table
        self._batch_get_retries = UnprocessedRetries(attempts=_BATCH_GET_ATTEMPTS, sleep=sleep)

    def record_pending(
        self, media_id: str, owner: str, content_type: str, size: int, created_at: str
    ) -> MediaRecord:
        """Write a new upload's record; refuses to overwrite an existing one."""
        record = MediaRecord(
            media_id=media_id,
            owner=owner,
            declared_type=content_type,
            declared_size=size,
            status=PENDING,
            created_at=created_at,
            object_key=keys.media_object_key(owner, media_id),
        )
        item = {
            "media_id": {"S": media_id},
            "owner": {"S": owner},
            "declared_type": {"S": content_type},
            "declared_size": {"N": str(size)},
            "status": {"S": PENDING},
            "created_at": {"S": created_at},
            "object_key": {"S": record.object_key},
        }
        try:
            self._dynamodb.put_item(
                TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(media_id)"
            )
        except ClientError as error:
            if _error_code(error) != "ConditionalCheckFailedException":
                raise
            # IDs are ULIDs with 80 random bits: a clash means a broken random source, not bad input.
            raise Conflict(f"media ID {media_id} is already taken; request a new upload URL.") from None
        return record

    def get(self, media_id: str) -> MediaRecord | None:
        """The record, read strongly consistently (the processor decides on it), or None."""
        response = self._dynamodb.get_item(
            TableName=self._table, Key={"media_id": {"S": media_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        return None if item is None else MediaRecord.from_item(item)

    def mark_ready(
        self, media_id: str, actual_type: str, actual_size: int, *, sha256: str, version_id: str | None
    ) -> str | None:
        """Pending -> ready, pinning the accepted version and bytes. Returns the status the record ends
        with, or None if there is no record."""
        values = {
            "actual_type": {"S": actual_type},
            "actual_size": {"N": str(actual_size)},
            "accepted_sha256": {"S": sha256},
        }
        if version_id is not None:
            values["accepted_version"] = {"S": version_id}
        return self._transition(media_id, READY, values)

    def mark_rejected(
        self,
        media_id: str,
        reason: str,
        *,
        actual_type: str | None = None,
        actual_size: int | None = None,
    ) -> str | None:
        """Pending -> rejected. Returns the status the record ends with, or None if there is no record."""
        values: dict[str, dict[str, str]] = {"reason": {"S": reason}}
        if actual_type is not None:
            values["actual_type"] = {"S": actual_type}
        if actual_size is not None:
            values["actual_size"] = {"N": str(actual_size)}
        return self._transition(media_id, REJECTED, values)

    def _transition(self, media_id: str, status: str, values: dict[str, dict[str, str]]) -> str | None:
        # Only a pending record moves, so a replayed or late event can never flip a verdict; the
        # old item comes back with the failed condition, which tells "already so" from "decided otherwise".
        names = {"#status": "status", **{f"#{name}": name for name in values}}
        attribute_values = {":pending": {"S": PENDING}, ":status": {"S": status}}
        attribute_values.update({f":{name}": value for name, value in values.items()})
        assignments = ", ".join(["#status = :status", *(f"#{name} = :{name}" for name in values)])
        try:
            self._dynamodb.update_item(
                TableName=self._table,
                Key={"media_id": {"S": media_id}},
                UpdateExpression=f"SET {assignments}",
                ConditionExpression="#status = :pending",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=attribute_values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if _error_code(error) != "ConditionalCheckFailedException":
                raise
            old = error.response.get("Item")
            return None if not old else old["status"]["S"]
        return status

    def assert_ready(self, owner: str, media_ids: tuple[str, ...]) -> dict[str, str]:
        """Raise ValidationError (field media_ids) on the first ID that is not the owner's ready upload;
        else return each ID's accepted object version (IDs accepted without one are left out)."""
        if not media_ids:
            return {}
        records = self._batch_get(tuple(dict.fromkeys(media_ids)))
        for media_id in media_ids:
            record = records.get(media_id)
            # Someone else's upload reads as unknown, so IDs cannot be probed for existence.
            if record is None or record.owner != owner:
                raise ValidationError(
                    f"media_ids: {media_id} is not one of your uploads; upload the file with "
                    "POST /media/uploads and attach the media_id it returns.",
                    field="media_ids",
                )
            if record.status == PENDING:
                raise ValidationError(
                    f"media_ids: {media_id} is still being processed; try again in a few seconds.",
                    field="media_ids",
                )
            if record.status != READY:
                raise ValidationError(
                    f"media_ids: {media_id} was rejected because {record.reason or 'it failed checks'}; "
                    "upload the file again as a new upload, declaring its real type and size.",
                    field="media_ids",
                )
        return {
            media_id: records[media_id].accepted_version
            for media_id in media_ids
            if records[media_id].accepted_version
        }

    def _batch_get(self, media_ids: tuple[str, ...]) -> dict[str, MediaRecord]:
        # Eventually consistent: a just-finished upload may read as pending for a moment, which
        # the caller is told to retry; strongly consistent reads would cost twice as much.
        wanted = [{"media_id": {"S": media_id}} for media_id in media_ids]
        try:
            items = batch_get_items(self._dynamodb, self._table, wanted, self._batch_get_retries)
        except BatchIncomplete:
            raise ServiceUnavailable("The media table is busy; try posting again in a moment.") from None
        records = (MediaRecord.from_item(item) for item in items)
        return {record.media_id: record for record in records}


class MediaNotYetRecorded(Exception):
    """A replicated object arrived before its record did; the event should be retried."""


class StoredVersion(Protocol):
    """One stored version of an uploaded object, read lazily (aviary.media.S3ObjectVersion)."""

    @property
    def version_id(self) -> str | None:
        """The version's ID (None only in a bucket that does not version)."""
        ...

    def head(self) -> bytes | None:
        """The first HEAD_BYTES bytes, or None once the version is gone."""
        ...

    def content_type(self) -> str | None:
        """The Content-Type the object was stored with."""
        ...

    def sha256(self) -> str | None:
        """The hex SHA-256 of the whole version, or None once it is gone."""
        ...

    def is_replica(self) -> bool:
        """Whether S3 replication (not a client) stored it here."""
        ...


class S3ObjectVersion:
    """A StoredVersion in S3: one ranged GET for the head and the metadata, a whole GET for the hash.

    Given no version ID (an event from an emulator that leaves it out), the version read first is
    the one judged: every later read names its ID.
    """

    def __init__(self, s3_client: Any, bucket: str, key: str, version_id: str | None) -> None:
        self._s3 = s3_client
        self._bucket = bucket
        self._key = key
        self._version_id = version_id
        self._head: bytes | None = None
        self._metadata: dict[str, Any] | None = None  # None: not read yet, or the version is gone

    @property
    def version_id(self) -> str | None:
        self._read_head()
        return self._version_id

    def _get(self, **extra: Any) -> dict[str, Any] | None:
        params = {"Bucket": self._bucket, "Key": self._key, **extra}
        if self._version_id is not None:
            params["VersionId"] = self._version_id
        try:
            return self._s3.get_object(**params)
        except ClientError as error:
            if _error_code(error) in ("NoSuchKey", "NoSuchVersion"):
                return None  # deleted after an earlier verdict
            raise

    def _read_head(self) -> None:
        if self._metadata is not None:
            return
        try:
            response = self._get(Range=f"bytes=0-{HEAD_BYTES - 1}")
        except ClientError as error:
            if _error_code(error) != "InvalidRange":  # an empty object has no byte 0
                raise
            response = self._get()
        if response is None:
            return
        self._head = response["Body"].read()
        self._version_id = self._version_id or response.get("VersionId")
        self._metadata = response

    def head(self) -> bytes | None:
        self._read_head()
        return self._head

    def size(self) -> int | None:
        """The version's size in bytes (one HEAD request), or None once it is gone."""
        params = {"Bucket": self._bucket, "Key": self._key}
        if self._version_id is not None:
            params["VersionId"] = self._version_id
        try:
            return int(self._s3.head_object(**params)["ContentLength"])
        except ClientError as error:
            # A HEAD answer has no body: a missing key is reported by its HTTP status alone.
            if _error_code(error) not in ("404", "NotFound", "NoSuchVersion"):
                raise
            return None  # deleted after an earlier verdict

    def content_type(self) -> str | None:
        self._read_head()
        return None if self._metadata is None else self._metadata.get("ContentType")

    def is_replica(self) -> bool:
        self._read_head()
        return self._metadata is not None and self._metadata.get("ReplicationStatus") == "REPLICA"

    def sha256(self) -> str | None:
        self._read_head()
        response = self._get() if self._metadata is not None else None
        if response is None:
            return None
        digest = hashlib.sha256()
        for chunk in iter(lambda: response["Body"].read(1 << 20), b""):
            digest.update(chunk)
        return digest.hexdigest()


def _sign_puts_with_sigv4(signature_version: str, **_: Any) -> str | None:
    # botocore presigns S3 URLs with SigV2 unless told otherwise, and SigV2 cannot sign
    # Content-Length; SigV4 signs every header given, so S3 refuses a body of another size.
    # Other schemes (SigV4a for multi-region access points, S3 Express) are left alone.
    return "s3v4-query" if signature_version in ("v4-query", "s3v4-query") else None


class MediaService:
    """Issues presigned uploads and judges uploaded objects by their content."""

    def __init__(
        self,
        media_store: MediaStore,
        s3_client: Any,
        bucket: str,
        *,
        clock_ms: Callable[[], int],
        random_bytes: Callable[[int], bytes],
        url_ttl_seconds: int = 300,
    ) -> None:
        self.store = media_store
        self.s3_client = s3_client
        self.bucket = bucket
        self._clock_ms = clock_ms
        self._random_bytes = random_bytes
        self._url_ttl_seconds = url_ttl_seconds
        # unique_id: clients are shared per process, and registering twice must not stack handlers.
        s3_client.meta.events.register(
            "choose-signer.s3.PutObject", _sign_puts_with_sigv4, unique_id="aviary-media-sigv4-put"
        )

    def create_upload(self, owner: Any, content_type: Any, size: Any) -> dict[str, Any]:
        """Validate the request, record it as pending and return a presigned PUT for exactly that file."""
        content_type, size = validation.media_upload(content_type, size)
        if not isinstance(owner, str) or not owner or "/" in owner:
            # The owner comes from the verified token, never from the request body.
            raise ValueError(f"owner must be a user ID without '/', not {owner!r}")
        now_ms = self._clock_ms()
        media_id = new_ulid(now_ms, self._random_bytes(RANDOM_BYTES))
        key = keys.media_object_key(owner, media_id)
        # Presigning is local: a failure here leaves nothing written.
        url = self.s3_client.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": key, "ContentType": content_type, "ContentLength": size},
            ExpiresIn=self._url_ttl_seconds,
            HttpMethod="PUT",
        )
        signed = parse_qs(urlsplit(url).query).get("X-Amz-SignedHeaders", [""])[0].split(";")
        if not {"content-type", "content-length"} <= set(signed):
            raise RuntimeError("the S3 client did not sign Content-Type and Content-Length (SigV4 needed)")
        self.store.record_pending(media_id, owner, content_type, size, utc_timestamp(now_ms))
        return {
            "media_id": media_id,
            "upload_url": url,
            "expires_in": self._url_ttl_seconds,
            "method": "PUT",
            "headers": {"Content-Type": content_type},
        }

    def process_upload(self, key: str, version_id: str | None, size: int | None) -> str:
        """Judge an object S3 reported stored in this service's bucket; an S3 event that leaves the
        size out has it read from S3. A version already gone is "ignored": retrying would never find it."""
        stored = S3ObjectVersion(self.s3_client, self.bucket, key, version_id)
        if size is None:
            size = stored.size()
            if size is None:
                logger.info("object %r version %s is gone; nothing to judge", key, version_id)
                return IGNORED
        return self.process_object(key, size, stored)

    def process_object(self, key: str, size: int, stored: StoredVersion) -> str:
        """Judge one object version: "ready", "rejected" or "ignored"; a redelivery gets the same answer."""
        parsed = parse_media_key(key)
        if parsed is None:
            logger.warning("ignoring object outside media/<owner>/<media_id>: %r", key)
            return IGNORED
        owner, media_id = parsed
        record = self.store.get(media_id)
        if record is None and stored.is_replica():
            # The object outran its record's table replication: retry later rather than
            # delete another region's good upload.
            raise MediaNotYetRecorded(f"no media record for replicated object {key!r} yet")
        if record is None or record.owner != owner:
            logger.warning("deleting %r: no upload with that ID was issued to %r", key, owner)
            self._delete(key, stored.version_id)
            return REJECTED
        if record.status == REJECTED:
            # A redelivery, or a reused upload URL: a rejected upload is never served.
            self._delete(key, stored.version_id)
            return REJECTED
        if record.status == READY:
            return self._keep_if_accepted(record, key, stored)

        head = stored.head() if size > 0 else b""
        if head is None:
            logger.info("object %r version %s is gone; nothing to judge", key, stored.version_id)
            return IGNORED
        actual_type = sniff_content_type(head)
        reason = _rejection_reason(record, actual_type, size, stored.content_type())
        if reason is None and actual_type is not None:
            digest = stored.sha256()
            if digest is None:
                return IGNORED  # gone while being judged
            accepted = self.store.mark_ready(
                media_id, actual_type, size, sha256=digest, version_id=stored.version_id
            )
            if accepted == READY:
                # Ready now, by this version or (a race on the same URL) another accepted first.
                return self._keep_if_accepted(self.store.get(media_id), key, stored, digest)
            reason = "another version of the upload was rejected first"
        # Record the verdict before deleting: if deletion then fails, a redelivery finds the
        # record rejected and deletes without judging again.
        final = self.store.mark_rejected(media_id, reason, actual_type=actual_type, actual_size=size)
        if final == READY:
            # A good version was accepted earlier (URL reused): only this version goes.
            logger.warning("deleting a rejected later version of ready media %s: %s", media_id, reason)
            return self._keep_if_accepted(self.store.get(media_id), key, stored)
        self._delete(key, stored.version_id)
        return REJECTED

    def _keep_if_accepted(
        self, record: MediaRecord | None, key: str, stored: StoredVersion, digest: str | None = None
    ) -> str:
        """A version of accepted media stays only if it holds the accepted bytes (the accepted
        version itself, a redelivery, a replica); any other is deleted, never the accepted one."""
        assert record is not None and record.status == READY
        digest = digest or stored.sha256()
        if digest is None:
            return IGNORED  # gone already
        if record.accepted_sha256 in (None, digest):
            return READY
        if stored.version_id is None:
            # Without a version ID a delete would remove the accepted bytes too (or hide them).
            logger.error("media %s was stored over without versioning; cannot restore it", record.media_id)
            return REJECTED
        logger.warning("deleting a later upload over accepted media %s", record.media_id)
        self._delete(key, stored.version_id)
        return REJECTED

    def _delete(self, key: str, version_id: str | None) -> None:
        # With a version ID the bad bytes are removed for good; S3 never replicates such deletes.
        params = {"Bucket": self.bucket, "Key": key}
        if version_id is not None:
            params["VersionId"] = version_id
        try:
            self.s3_client.delete_object(**params)
        except ClientError as error:
            if _error_code(error) not in ("NoSuchKey", "NoSuchVersion"):
                raise


def _rejection_reason(
    record: MediaRecord, actual_type: str | None, size: int, stored_type: str | None
) -> str | None:
    """Why an object fails its record's declaration, in words that finish 'rejected because ...'.

    The upload URL is signed for the declared type and size, so S3 refuses any other; an emulator
    that does not check signatures lets them through, and they are refused here instead.
    """
    if actual_type is None:
        return "its content is not a JPEG, PNG, GIF, WebP or MP4 file"
    cap = MEDIA_SIZE_CAPS[actual_type]
    if size > cap:
        return f"it is {size} bytes, over the {cap}-byte limit for {actual_type}"
    if actual_type != record.declared_type:
        return f"its content is {actual_type}, not {record.declared_type} as declared"
    if size != record.declared_size:
        return f"it is {size} bytes, not {record.declared_size} as declared"
    media_type = (stored_type or "").split(";")[0].strip().lower()
    if media_type != record.declared_type:
        return f"it was stored as {stored_type or 'no type'}, not {record.declared_type} as declared"
    return None
