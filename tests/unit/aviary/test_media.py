"""The media path against moto: sniffing, presigned uploads, verdicts, replays and assert_ready."""

from __future__ import annotations

import hashlib
import hmac
import itertools
from typing import Any
from urllib.parse import parse_qs, parse_qsl, quote, urlsplit

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from aviary import media
from aviary.clients import AWS_CONFIG
from aviary.errors import Conflict, ServiceUnavailable, ValidationError
from aviary.ids import is_ulid, new_ulid
from aviary.keys import media_object_key
from aviary.media import MediaNotYetRecorded, MediaService, MediaStore, S3ObjectVersion, sniff_content_type
from aviary.schema import MEDIA
from aviary.validation import MIB
from tools.local_aws.tables import create_tables

REGION = "us-east-1"
BUCKET = "aviary-media-123456789012-us-east-1"
NOW_MS = 1_800_000_000_123

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01" + bytes(40)
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(40)
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00" + bytes(40)
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(40)
MP4 = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + bytes(40)


def new_media_backends() -> tuple[Any, str, Any]:
    """A DynamoDB client, the media table's name and an S3 client with the versioned media bucket;
    call inside mock_aws. Shared with tests/unit/lambda_functions/test_media_processor.py."""
    dynamodb = boto3.client("dynamodb", region_name=REGION, config=AWS_CONFIG)
    table = create_tables(dynamodb, [MEDIA])["media"]
    s3 = boto3.client("s3", region_name=REGION, config=AWS_CONFIG)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return dynamodb, table, s3


@pytest.fixture
def aws():
    with mock_aws():
        yield new_media_backends()


@pytest.fixture
def service(aws):
    dynamodb, table, s3 = aws
    counter = itertools.count(1)
    return MediaService(
        MediaStore(dynamodb, table),
        s3,
        BUCKET,
        clock_ms=lambda: NOW_MS,
        random_bytes=lambda n: next(counter).to_bytes(n, "big"),
    )


def _items(aws):
    dynamodb, table, _ = aws
    return dynamodb.scan(TableName=table)["Items"]


def _put(aws, key, body, content_type="application/octet-stream"):
    """Stores an object as the client's PUT would; returns its version ID."""
    return aws[2].put_object(Bucket=BUCKET, Key=key, Body=body, ContentType=content_type)["VersionId"]


def _process(service, aws, key, body, version_id, size=None):
    size = len(body) if size is None else size
    return service.process_object(key, size, S3ObjectVersion(aws[2], BUCKET, key, version_id))


def _versions(aws, key):
    listing = aws[2].list_object_versions(Bucket=BUCKET, Prefix=key)
    return [version["VersionId"] for version in listing.get("Versions", [])]


def _upload(service, aws, body, content_type, owner="alice", size=None):
    """A pending upload declared as (content_type, size) whose object holds body; (id, key, version)."""
    upload = service.create_upload(owner, content_type, len(body) if size is None else size)
    key = media_object_key(owner, upload["media_id"])
    return upload["media_id"], key, _put(aws, key, body, content_type)


# --- sniffing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (JPEG, "image/jpeg"),
        (b"\xff\xd8\xff\xdb", "image/jpeg"),
        (PNG, "image/png"),
        (b"GIF87a\x01\x00", "image/gif"),
        (GIF, "image/gif"),
        (WEBP, "image/webp"),
        (MP4, "video/mp4"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42", "video/mp4"),
        (b"\x00\x00\x00\x1cftypM4V \x00\x00\x00\x01", "video/mp4"),
    ],
    ids=["jpeg-jfif", "jpeg-raw", "png", "gif87a", "gif89a", "webp", "mp4-isom", "mp4-mp42", "m4v"],
)
def test_each_magic_number_is_recognised(head, expected):
    assert sniff_content_type(head) == expected
    assert sniff_content_type(head[:16]) == expected


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"\xff\xd8",  # truncated JPEG
        b"\x89PNG\r\n\x1a",  # truncated PNG
        b"GIF88a",
        b"RIFF\x24\x00\x00\x00AVI LIST",  # RIFF, but AVI
        b"RIFF\x24\x00\x00",
        b"\x00\x00\x00\x08ftypisom\x00\x00\x00\x00",  # box smaller than its own fields
        b"\x00\x10\x00\x00ftypisom\x00\x00\x00\x00",  # a 1 MiB ftyp box is not a real file
        b"\x00\x00\x00\x1aftypisom\x00\x00\x00\x00",  # not whole 4-byte brands
        b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00",  # HEIF still image
        b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00",  # AVIF still image
        b"%PDF-1.7\n",
        b"BM\x36\x00\x0c\x00",  # BMP
        b"PK\x03\x04",  # ZIP
        b"<svg xmlns=",
        b"hello, world!!!!",
    ],
)
def test_anything_else_is_unknown(head):
    assert sniff_content_type(head) is None


def test_only_the_leading_bytes_count():
    assert sniff_content_type(b"x" + JPEG) is None


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("media/alice/01KD0000000000000000000001", ("alice", "01KD0000000000000000000001")),
        ("media/alice/01kd0000000000000000000001", None),  # not the canonical spelling
        ("media/alice/01KD0000000000000000000001.jpg", None),
        ("media/alice/sub/01KD0000000000000000000001", None),
        ("media//01KD0000000000000000000001", None),
        ("uploads/alice/01KD0000000000000000000001", None),
        ("media/01KD0000000000000000000001", None),
    ],
)
def test_media_keys_are_parsed_strictly(key, expected):
    assert media.parse_media_key(key) == expected


# --- create_upload --------------------------------------------------------------------------


def _sigv4_accepts(url, method, headers, secret):
    """Recomputes a presigned URL's SigV4 signature for a request with these headers (AWS's algorithm)."""
    parts = urlsplit(url)
    params = parse_qsl(parts.query, keep_blank_values=True)
    fields = dict(params)
    signed = fields["X-Amz-SignedHeaders"].split(";")
    sent = {"host": parts.netloc, **{name.lower(): value for name, value in headers.items()}}
    if not set(signed) <= set(sent):
        return False
    query = "&".join(
        f"{quote(name, safe='-_.~')}={quote(value, safe='-_.~')}"
        for name, value in sorted(params)
        if name != "X-Amz-Signature"
    )
    canonical = "\n".join(
        [
            method,
            parts.path,
            query,
            "".join(f"{name}:{str(sent[name]).strip()}\n" for name in signed),
            ";".join(signed),
            "UNSIGNED-PAYLOAD",
        ]
    )
    scope = fields["X-Amz-Credential"].split("/", 1)[1]
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", fields["X-Amz-Date"], scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = f"AWS4{secret}".encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(signature, fields["X-Amz-Signature"])


def test_create_upload_records_a_pending_item_and_returns_a_put_for_exactly_that_file(service, aws):
    upload = service.create_upload("alice", "Image/JPEG", 1234)
    media_id = upload["media_id"]
    assert is_ulid(media_id) and media_id == new_ulid(NOW_MS, (1).to_bytes(10, "big"))
    assert upload["method"] == "PUT"
    assert upload["expires_in"] == 300
    assert upload["headers"] == {"Content-Type": "image/jpeg"}

    url = urlsplit(upload["upload_url"])
    assert url.path.endswith(f"/media/alice/{media_id}")
    query = parse_qs(url.query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["300"]
    # Both are signed, so S3 refuses a PUT of another type or size with SignatureDoesNotMatch.
    assert set(query["X-Amz-SignedHeaders"][0].split(";")) == {"content-length", "content-type", "host"}

    assert _items(aws) == [
        {
            "media_id": {"S": media_id},
            "owner": {"S": "alice"},
            "declared_type": {"S": "image/jpeg"},
            "declared_size": {"N": "1234"},
            "status": {"S": "pending"},
            "created_at": {"S": "2027-01-15T08:00:00.123Z"},
            "object_key": {"S": f"media/alice/{media_id}"},
        }
    ]


def test_the_signature_holds_only_for_the_declared_type_and_size(service):
    # moto does not check SigV4 presigned signatures, so recompute the one S3 would.
    url = service.create_upload("alice", "image/png", len(PNG))["upload_url"]
    secret = boto3.Session().get_credentials().get_frozen_credentials().secret_key  # moto's fake one
    assert _sigv4_accepts(url, "PUT", {"Content-Type": "image/png", "Content-Length": len(PNG)}, secret)
    assert not _sigv4_accepts(url, "PUT", {"Content-Type": "image/png", "Content-Length": 5 * MIB}, secret)
    assert not _sigv4_accepts(url, "PUT", {"Content-Type": "text/html", "Content-Length": len(PNG)}, secret)
    assert not _sigv4_accepts(url, "PUT", {"Content-Type": "image/png"}, secret)
    assert not _sigv4_accepts(url, "GET", {"Content-Type": "image/png", "Content-Length": len(PNG)}, secret)


def test_a_client_can_put_to_the_presigned_url(service, aws):
    requests = pytest.importorskip("requests")
    upload = service.create_upload("alice", "image/png", len(PNG))
    response = requests.put(upload["upload_url"], data=PNG, headers=upload["headers"], timeout=5)
    assert response.status_code == 200, response.text
    stored = aws[2].get_object(Bucket=BUCKET, Key=f"media/alice/{upload['media_id']}")
    assert stored["Body"].read() == PNG
    assert stored["ContentType"] == "image/png"


def test_a_client_configured_for_sigv2_cannot_silently_drop_the_size_from_the_signature(aws):
    dynamodb, table, _ = aws
    sigv2 = boto3.client("s3", region_name=REGION, config=AWS_CONFIG.merge(Config(signature_version="s3")))
    service = MediaService(
        MediaStore(dynamodb, table), sigv2, BUCKET, clock_ms=lambda: NOW_MS, random_bytes=bytes
    )
    with pytest.raises(RuntimeError, match="Content-Length"):
        service.create_upload("alice", "image/png", 10)
    assert _items(aws) == []


@pytest.mark.parametrize(
    ("content_type", "size", "field"),
    [
        ("image/svg+xml", 10, "content_type"),
        ("image/jpeg; charset=binary", 10, "content_type"),
        (None, 10, "content_type"),
        ("image/png", 5 * MIB + 1, "size"),
        ("video/mp4", 50 * MIB + 1, "size"),
        ("image/png", 0, "size"),
        ("image/png", True, "size"),
        ("image/png", "10", "size"),
    ],
)
def test_a_bad_upload_request_names_its_field_and_writes_nothing(service, aws, content_type, size, field):
    with pytest.raises(ValidationError) as raised:
        service.create_upload("alice", content_type, size)
    assert raised.value.field == field
    assert _items(aws) == []


def test_recording_an_id_twice_is_a_conflict(aws):
    store = MediaStore(aws[0], aws[1])
    store.record_pending("01KD0000000000000000000001", "alice", "image/png", 10, "2027-01-15T08:00:00.123Z")
    with pytest.raises(Conflict):
        store.record_pending("01KD0000000000000000000001", "bob", "image/png", 10, "2027-01-15T08:00:00.123Z")
    assert media.MediaRecord.from_item(_items(aws)[0]).owner == "alice"


# --- processing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(JPEG, "image/jpeg"), (PNG, "image/png"), (GIF, "image/gif"), (WEBP, "image/webp"), (MP4, "video/mp4")],
)
def test_content_matching_its_declaration_is_ready(service, aws, body, content_type):
    media_id, key, version = _upload(service, aws, body, content_type)
    assert _process(service, aws, key, body, version) == "ready"
    record = service.store.get(media_id)
    assert (record.status, record.actual_type, record.actual_size) == ("ready", content_type, len(body))
    assert _versions(aws, key) == [version]


def test_a_png_declared_as_jpeg_is_rejected_and_deleted(service, aws):
    media_id, key, version = _upload(service, aws, PNG, "image/jpeg")
    assert _process(service, aws, key, PNG, version) == "rejected"
    record = service.store.get(media_id)
    assert record.status == "rejected"
    assert record.reason == "its content is image/png, not image/jpeg as declared"
    assert record.actual_type == "image/png"
    assert _versions(aws, key) == []
    with pytest.raises(ClientError):
        aws[2].get_object(Bucket=BUCKET, Key=key)


def test_a_size_other_than_declared_is_rejected(service, aws):
    media_id, key, version = _upload(service, aws, JPEG, "image/jpeg", size=len(JPEG) + 1)
    assert _process(service, aws, key, JPEG, version) == "rejected"
    assert service.store.get(media_id).reason == f"it is {len(JPEG)} bytes, not {len(JPEG) + 1} as declared"
    assert _versions(aws, key) == []


def test_a_size_over_the_cap_of_the_real_type_is_rejected(service, aws):
    # Declared as a 6 MiB video, but the bytes are a JPEG, whose cap is 5 MiB.
    media_id, key, version = _upload(service, aws, JPEG, "video/mp4", size=6 * MIB)
    assert _process(service, aws, key, JPEG, version, size=6 * MIB) == "rejected"
    assert (
        service.store.get(media_id).reason
        == f"it is {6 * MIB} bytes, over the {5 * MIB}-byte limit for image/jpeg"
    )


@pytest.mark.parametrize("body", [b"<html><script>alert(1)</script>", b"", b"\xff\xd8"])
def test_unrecognised_content_is_rejected(service, aws, body):
    media_id, key, version = _upload(service, aws, body, "image/jpeg", size=max(len(body), 1))
    assert _process(service, aws, key, body, version) == "rejected"
    assert "not a JPEG, PNG, GIF, WebP or MP4 file" in service.store.get(media_id).reason
    assert _versions(aws, key) == []


@pytest.mark.parametrize(
    "key", ["avatars/alice/01KD0000000000000000000001", "media/alice/holiday.jpg", "media/alice/x/y"]
)
def test_objects_outside_the_media_layout_are_ignored_and_kept(service, aws, key):
    version = _put(aws, key, PNG)
    assert _process(service, aws, key, PNG, version) == "ignored"
    assert _versions(aws, key) == [version]
    assert _items(aws) == []


def test_an_object_without_a_record_is_rejected_and_deleted(service, aws):
    key = media_object_key("alice", "01KD0000000000000000000009")
    version = _put(aws, key, PNG)
    assert _process(service, aws, key, PNG, version) == "rejected"
    assert _versions(aws, key) == []
    assert _items(aws) == []  # nothing invented for an ID this service never issued


def test_an_object_under_another_owner_is_deleted_without_touching_the_real_record(service, aws):
    media_id, _, _ = _upload(service, aws, PNG, "image/png")
    key = media_object_key("mallory", media_id)
    version = _put(aws, key, PNG)
    assert _process(service, aws, key, PNG, version) == "rejected"
    assert _versions(aws, key) == []
    assert service.store.get(media_id).status == "pending"


class Replica(S3ObjectVersion):
    """An object S3 replication stored (moto cannot mark one)."""

    def is_replica(self) -> bool:
        return True


def test_a_replica_that_outran_its_record_is_retried_not_deleted(service, aws):
    key = media_object_key("alice", "01KD0000000000000000000009")
    version = _put(aws, key, PNG)
    with pytest.raises(MediaNotYetRecorded):
        service.process_object(key, len(PNG), Replica(aws[2], BUCKET, key, version))
    assert _versions(aws, key) == [version]


def test_accepted_media_pins_its_version_and_bytes_and_keeps_a_replica_of_them(service, aws):
    media_id, key, version = _upload(service, aws, PNG, "image/png")
    assert _process(service, aws, key, PNG, version) == "ready"
    record = service.store.get(media_id)
    assert (record.accepted_version, record.accepted_sha256) == (version, hashlib.sha256(PNG).hexdigest())

    # Replication stores the same bytes as a version of its own (locally; S3 keeps the ID).
    replica = _put(aws, key, PNG, "image/png")
    assert service.process_object(key, len(PNG), Replica(aws[2], BUCKET, key, replica)) == "ready"
    assert sorted(_versions(aws, key)) == sorted([version, replica])


def test_another_valid_file_stored_over_accepted_media_is_deleted_whatever_its_type(service, aws):
    media_id, key, accepted = _upload(service, aws, PNG, "image/png")
    _process(service, aws, key, PNG, accepted)
    swapped = PNG[:-1] + b"\x01"
    later = _put(aws, key, swapped, "image/png")

    assert _process(service, aws, key, swapped, later) == "rejected"

    assert _versions(aws, key) == [accepted]
    assert service.store.get(media_id).status == "ready"
    assert aws[2].get_object(Bucket=BUCKET, Key=key)["Body"].read() == PNG


@pytest.mark.parametrize(
    ("body", "declared", "outcome"), [(PNG, "image/png", "ready"), (PNG, "image/gif", "rejected")]
)
def test_a_redelivered_event_has_the_same_outcome(service, aws, body, declared, outcome):
    media_id, key, version = _upload(service, aws, body, declared)
    first = _process(service, aws, key, body, version)
    record = service.store.get(media_id)
    assert _process(service, aws, key, body, version) == first == outcome
    assert service.store.get(media_id) == record


def test_a_vanished_version_of_a_pending_upload_is_ignored(service, aws):
    media_id, key, version = _upload(service, aws, PNG, "image/png")
    aws[2].delete_object(Bucket=BUCKET, Key=key, VersionId=version)
    assert _process(service, aws, key, PNG, version) == "ignored"
    assert service.store.get(media_id).status == "pending"


# --- processing what S3 reported ---------------------------------------------------------------


class HeadObject:
    """An S3 client whose HEAD requests fail with `error` (or fail the test if `error` is None)."""

    def __init__(self, client: Any, error: ClientError | None = None) -> None:
        self._client = client
        self._error = error

    def head_object(self, **params: Any) -> dict[str, Any]:
        if self._error is None:
            raise AssertionError(f"HEAD {params['Key']}: the reported size should have been used")
        raise self._error

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def _service_over(aws, s3_client) -> MediaService:
    dynamodb, table, _ = aws
    return MediaService(
        MediaStore(dynamodb, table), s3_client, BUCKET, clock_ms=lambda: NOW_MS, random_bytes=bytes
    )


def test_an_upload_reported_without_its_size_is_judged_by_the_size_s3_holds(service, aws):
    media_id, key, version = _upload(service, aws, PNG, "image/png", size=len(PNG) + 1)
    assert service.process_upload(key, version, None) == "rejected"
    assert service.store.get(media_id).actual_size == len(PNG)
    ready_id, ready_key, ready_version = _upload(service, aws, JPEG, "image/jpeg")
    assert service.process_upload(ready_key, ready_version, None) == "ready"
    assert service.store.get(ready_id).actual_size == len(JPEG)


def test_a_reported_size_is_used_without_asking_s3(service, aws):
    media_id, key, version = _upload(service, aws, JPEG, "image/jpeg")
    assert _service_over(aws, HeadObject(aws[2])).process_upload(key, version, len(JPEG)) == "ready"
    assert service.store.get(media_id).status == "ready"


def test_a_sizeless_report_of_a_vanished_version_is_ignored_not_retried(service, aws):
    media_id, key, version = _upload(service, aws, PNG, "image/png")
    aws[2].delete_object(Bucket=BUCKET, Key=key, VersionId=version)
    assert service.process_upload(key, version, None) == "ignored"
    assert service.store.get(media_id).status == "pending"


def test_a_failing_size_read_is_raised_for_the_event_to_be_retried(service, aws):
    media_id, key, version = _upload(service, aws, PNG, "image/png")
    throttled = ClientError({"Error": {"Code": "SlowDown", "Message": "Slow down"}}, "HeadObject")
    with pytest.raises(ClientError, match="SlowDown"):
        _service_over(aws, HeadObject(aws[2], throttled)).process_upload(key, version, None)
    assert service.store.get(media_id).status == "pending"
    assert _versions(aws, key) == [version]


def test_a_rejected_upload_is_never_made_ready_by_a_later_good_version(service, aws):
    media_id, key, bad = _upload(service, aws, PNG, "image/jpeg", size=len(JPEG))
    assert _process(service, aws, key, PNG, bad, size=len(JPEG)) == "rejected"
    # The same presigned URL, reused with a body that would have passed.
    good = _put(aws, key, JPEG, "image/jpeg")
    assert _process(service, aws, key, JPEG, good) == "rejected"
    assert service.store.get(media_id).status == "rejected"
    assert _versions(aws, key) == []


def test_a_ready_upload_stays_ready_and_a_bad_later_version_is_removed(service, aws):
    media_id, key, good = _upload(service, aws, JPEG, "image/jpeg")
    assert _process(service, aws, key, JPEG, good) == "ready"
    bad = _put(aws, key, PNG, "image/jpeg")
    assert _process(service, aws, key, PNG, bad) == "rejected"
    record = service.store.get(media_id)
    assert (record.status, record.reason) == ("ready", None)
    assert _versions(aws, key) == [good]
    assert aws[2].get_object(Bucket=BUCKET, Key=key)["Body"].read() == JPEG


def test_transitions_only_leave_pending(aws):
    store = MediaStore(aws[0], aws[1])
    pinned = {"sha256": "0" * 64, "version_id": "v1"}
    store.record_pending("01KD0000000000000000000001", "alice", "image/png", 10, "2027-01-15T08:00:00.123Z")
    store.record_pending("01KD0000000000000000000002", "alice", "image/png", 10, "2027-01-15T08:00:00.123Z")
    assert store.mark_rejected("01KD0000000000000000000001", "bad") == "rejected"
    assert store.mark_rejected("01KD0000000000000000000001", "other reason") == "rejected"  # no-op
    assert store.mark_ready("01KD0000000000000000000001", "image/png", 10, **pinned) == "rejected"
    assert store.get("01KD0000000000000000000001").reason == "bad"
    assert store.mark_ready("01KD0000000000000000000002", "image/png", 10, **pinned) == "ready"
    assert store.mark_ready("01KD0000000000000000000002", "image/png", 10, **pinned) == "ready"  # no-op
    assert store.mark_rejected("01KD0000000000000000000002", "late") == "ready"
    assert store.get("01KD0000000000000000000002").reason is None
    assert store.mark_ready("01KD0000000000000000000003", "image/png", 10, **pinned) is None
    assert store.get("01KD0000000000000000000003") is None  # a transition never creates an item


# --- assert_ready ---------------------------------------------------------------------------


@pytest.fixture
def uploads(service, aws):
    """alice: one ready, one pending, one rejected; bob: one ready."""
    ready, key, version = _upload(service, aws, PNG, "image/png")
    _process(service, aws, key, PNG, version)
    pending, _, _ = _upload(service, aws, PNG, "image/png")
    rejected, key, version = _upload(service, aws, PNG, "image/webp")
    _process(service, aws, key, PNG, version)
    bobs, key, bobs_version = _upload(service, aws, PNG, "image/png", owner="bob")
    _process(service, aws, key, PNG, bobs_version)
    return {
        "ready": ready,
        "pending": pending,
        "rejected": rejected,
        "bobs": bobs,
        "versions": {ready: service.store.get(ready).accepted_version, bobs: bobs_version},
    }


def test_assert_ready_accepts_the_owners_ready_media_and_returns_the_accepted_versions(service, uploads):
    ready, bobs, versions = uploads["ready"], uploads["bobs"], uploads["versions"]
    assert all(versions.values())  # the bucket versions

    assert service.store.assert_ready("alice", (ready,)) == {ready: versions[ready]}
    assert service.store.assert_ready("alice", ()) == {}
    assert service.store.assert_ready("bob", (bobs,)) == {bobs: versions[bobs]}


def test_assert_ready_leaves_out_media_accepted_without_a_version(service):
    # As the processor records an upload accepted from a bucket that does not version.
    media_id = service.create_upload("alice", "image/png", len(PNG))["media_id"]
    assert (
        service.store.mark_ready(media_id, "image/png", len(PNG), sha256="0" * 64, version_id=None) == "ready"
    )

    assert service.store.assert_ready("alice", (media_id,)) == {}


@pytest.mark.parametrize(
    ("which", "message"),
    [
        ("pending", "is still being processed"),
        ("rejected", "was rejected because its content is image/png, not image/webp as declared"),
        ("bobs", "is not one of your uploads"),
        ("unknown", "is not one of your uploads"),
    ],
)
def test_assert_ready_names_the_first_offending_id(service, uploads, which, message):
    offending = uploads.get(which, "01KD0000000000000000000099")
    with pytest.raises(ValidationError) as raised:
        service.store.assert_ready("alice", (uploads["ready"], offending, uploads["pending"]))
    assert raised.value.field == "media_ids"
    assert offending in raised.value.message
    assert message in raised.value.message


def test_someone_elses_media_reads_exactly_like_unknown_media(service, uploads):
    messages = []
    for media_id in (uploads["bobs"], "01KD0000000000000000000099"):
        with pytest.raises(ValidationError) as raised:
            service.store.assert_ready("alice", (media_id,))
        messages.append(raised.value.message.replace(media_id, "ID"))
    assert messages[0] == messages[1]


def test_record_json_shape(service, uploads):
    record = service.store.get(uploads["rejected"])
    assert record.to_json() == {
        "id": uploads["rejected"],
        "content_type": "image/webp",
        "size": len(PNG),
        "status": "rejected",
        "reason": "its content is image/png, not image/webp as declared",
        "created_at": "2027-01-15T08:00:00.123Z",
    }


class UnprocessedReads:
    """The moto client, except that the first `times` BatchGetItem calls process none of their keys."""

    def __init__(self, client: Any, times: int) -> None:
        self.client = client
        self.times = times
        self.batch_gets = 0

    def batch_get_item(self, **kwargs: Any) -> Any:
        self.batch_gets += 1
        if self.times > 0:
            self.times -= 1
            return {"Responses": {}, "UnprocessedKeys": kwargs["RequestItems"]}
        return self.client.batch_get_item(**kwargs)


def test_assert_ready_asks_again_for_keys_left_unprocessed_then_asks_the_client_to_retry(aws, uploads):
    ready, versions = uploads["ready"], uploads["versions"]
    dynamodb, table = aws[0], aws[1]
    sleeps: list[float] = []
    briefly = UnprocessedReads(dynamodb, times=2)
    assert MediaStore(briefly, table, sleep=sleeps.append).assert_ready("alice", (ready,)) == {
        ready: versions[ready]
    }
    assert briefly.batch_gets == 3 and len(sleeps) == 2

    stuck = UnprocessedReads(dynamodb, times=3)
    with pytest.raises(ServiceUnavailable, match="try posting again"):
        MediaStore(stuck, table, sleep=sleeps.append).assert_ready("alice", (ready,))
    assert stuck.batch_gets == 3  # bounded: the API answers 503 rather than keep the client waiting
