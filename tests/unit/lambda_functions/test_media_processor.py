"""The media processor handler: SQS batches of S3 notifications, against moto S3, SQS and DynamoDB."""

from __future__ import annotations

import importlib
import json
import sys
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote, quote_plus

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from aviary.clients import AWS_CONFIG
from aviary.keys import media_object_key
from aviary.media import MediaService, MediaStore
from tests.unit.aviary.test_media import BUCKET, new_media_backends
from tests.unit.lambda_functions.lambda_context import lambda_context

REGION = "us-east-1"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:123456789012:aviary-media-events"
MODULE = "lambda_functions.media_processor.handler"
NOW_MS = 1_800_000_000_123

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01" + bytes(100)
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(100)
CONTEXT = lambda_context("aviary-media-processor")


@pytest.fixture(scope="module")
def handler_module():
    """The handler imported fresh with its environment, as a Lambda cold start would."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_DEFAULT_REGION", REGION)
        patch.setenv("AVIARY_MEDIA_TABLE", "aviary-media")
        patch.setenv("AVIARY_MEDIA_BUCKET", BUCKET)
        sys.modules.pop(MODULE, None)
        module = importlib.import_module(MODULE)
    return module


@pytest.fixture
def aws(handler_module, monkeypatch):
    with mock_aws():
        dynamodb, table, s3 = new_media_backends()
        service = handler_module.build_service(dynamodb, s3, media_table=table, media_bucket=BUCKET)
        monkeypatch.setattr(handler_module, "service", service)
        yield SimpleNamespace(dynamodb=dynamodb, table=table, s3=s3, service=service)


def _uploaded(aws, body: bytes, content_type: str, owner: str = "alice") -> tuple[str, str, str]:
    """A pending upload whose object holds body: (media_id, key, version_id)."""
    upload = aws.service.create_upload(owner, content_type, len(body))
    key = media_object_key(owner, upload["media_id"])
    version = aws.s3.put_object(Bucket=BUCKET, Key=key, Body=body, ContentType=content_type)["VersionId"]
    return upload["media_id"], key, version


def _s3_record(
    key: str, size: int | None, version_id: str | None, *, event_name="ObjectCreated:Put", bucket=BUCKET
):
    """One record as S3 writes it: the key URL-encoded, with + for spaces."""
    s3_object: dict[str, Any] = {"key": quote_plus(key, safe="/"), "eTag": "0f343b0931126a20f133d67c2b018a3b"}
    if size is not None:
        s3_object["size"] = size
    if version_id is not None:
        s3_object["versionId"] = version_id
    s3_object["sequencer"] = "0065B2F7C3A1B2C3D4"
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": REGION,
        "eventTime": "2026-11-21T19:45:15.123Z",
        "eventName": event_name,
        "userIdentity": {"principalId": "AWS:AROAEXAMPLEROLEID:aviary-api-media"},
        "requestParameters": {"sourceIPAddress": "203.0.113.7"},
        "responseElements": {
            "x-amz-request-id": "C3D13FE58DE4C810",
            "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD",
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "media-object-created",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": s3_object,
        },
    }


def _sqs_record(message_id: str, body: Any) -> dict[str, Any]:
    text = body if isinstance(body, str) else json.dumps(body)
    return {
        "messageId": message_id,
        "receiptHandle": f"AQEB{message_id}",
        "body": text,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1795290315123",
            "SenderId": "AIDAJHIPRHEMV73VRJEBU",
            "ApproximateFirstReceiveTimestamp": "1795290315130",
        },
        "messageAttributes": {},
        "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
        "eventSource": "aws:sqs",
        "eventSourceARN": QUEUE_ARN,
        "awsRegion": REGION,
    }


def _notification(*s3_records) -> dict[str, Any]:
    return {"Records": list(s3_records)}


def _invoke(handler_module, *sqs_records) -> dict[str, Any]:
    return handler_module.handler({"Records": list(sqs_records)}, CONTEXT)


def _status(aws, media_id: str) -> str:
    return aws.service.store.get(media_id).status


TEST_EVENT = {
    "Service": "Amazon S3",
    "Event": "s3:TestEvent",
    "Time": "2026-11-21T19:40:00.000Z",
    "Bucket": BUCKET,
    "RequestId": "5582815E1AEA5ADF",
    "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE",
}


def test_configuration_is_read_from_the_environment_once_at_import(handler_module):
    assert handler_module.SETTINGS.media_table == "aviary-media"
    assert handler_module.SETTINGS.media_bucket == BUCKET
    assert handler_module.service.bucket == BUCKET  # before the fixture swaps in a moto-backed one


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_the_s3_test_event_is_acknowledged_and_ignored(handler_module, aws):
    assert _invoke(handler_module, _sqs_record("m-test", TEST_EVENT)) == {"batchItemFailures": []}
    assert aws.dynamodb.scan(TableName=aws.table)["Items"] == []


def test_a_real_notification_marks_the_upload_ready(handler_module, aws):
    requests = pytest.importorskip("requests")
    upload = aws.service.create_upload("alice", "image/jpeg", len(JPEG))
    put = requests.put(upload["upload_url"], data=JPEG, headers=upload["headers"], timeout=5)
    assert put.status_code == 200, put.text
    key = media_object_key("alice", upload["media_id"])
    version = put.headers["x-amz-version-id"]

    result = _invoke(handler_module, _sqs_record("m-1", _notification(_s3_record(key, len(JPEG), version))))

    assert result == {"batchItemFailures": []}
    record = aws.service.store.get(upload["media_id"])
    assert (record.status, record.actual_type, record.actual_size) == ("ready", "image/jpeg", len(JPEG))


def test_keys_are_url_decoded(handler_module, aws):
    assert handler_module.object_key(_s3_record("media/alice/holiday photo+1.jpg", 1, None)) == (
        "media/alice/holiday photo+1.jpg"
    )
    # Over-encoded, as moto writes it: the slashes too. Undecoded, the key would be ignored.
    media_id, key, version = _uploaded(aws, PNG, "image/png")
    record = _s3_record(key, len(PNG), version)
    record["s3"]["object"]["key"] = quote(key, safe="")
    assert "%2F" in record["s3"]["object"]["key"]
    assert _invoke(handler_module, _sqs_record("m-1", _notification(record))) == {"batchItemFailures": []}
    assert _status(aws, media_id) == "ready"


def test_a_png_declared_as_jpeg_is_rejected_and_its_version_deleted(handler_module, aws):
    media_id, key, version = _uploaded(aws, PNG, "image/jpeg")
    result = _invoke(handler_module, _sqs_record("m-1", _notification(_s3_record(key, len(PNG), version))))
    assert result == {"batchItemFailures": []}
    assert _status(aws, media_id) == "rejected"
    assert "Versions" not in aws.s3.list_object_versions(Bucket=BUCKET, Prefix=key)


def test_a_redelivered_message_changes_nothing(handler_module, aws):
    ready_id, ready_key, ready_version = _uploaded(aws, JPEG, "image/jpeg")
    bad_id, bad_key, bad_version = _uploaded(aws, PNG, "image/jpeg")
    message = _notification(
        _s3_record(ready_key, len(JPEG), ready_version), _s3_record(bad_key, len(PNG), bad_version)
    )
    for _ in range(2):
        assert _invoke(handler_module, _sqs_record("m-1", message)) == {"batchItemFailures": []}
        assert (_status(aws, ready_id), _status(aws, bad_id)) == ("ready", "rejected")


def test_the_size_is_read_from_s3_when_the_event_lacks_it(handler_module, aws):
    media_id, key, version = _uploaded(aws, JPEG, "image/jpeg")
    assert _invoke(handler_module, _sqs_record("m-1", _notification(_s3_record(key, None, version)))) == {
        "batchItemFailures": []
    }
    assert aws.service.store.get(media_id).actual_size == len(JPEG)


@pytest.mark.parametrize(
    ("event_name", "bucket", "key"),
    [
        ("ObjectRemoved:Delete", BUCKET, None),
        ("ObjectCreated:Put", "some-other-bucket", None),
        ("ObjectCreated:Put", BUCKET, "exports/report.csv"),
    ],
    ids=["removal", "other-bucket", "other-prefix"],
)
def test_other_events_are_ignored(handler_module, aws, event_name, bucket, key):
    media_id, media_key, version = _uploaded(aws, JPEG, "image/jpeg")
    record = _s3_record(key or media_key, len(JPEG), version, event_name=event_name, bucket=bucket)
    assert _invoke(handler_module, _sqs_record("m-1", _notification(record))) == {"batchItemFailures": []}
    assert _status(aws, media_id) == "pending"


class FailingGets:
    """The S3 client, except that GetObject of one key fails as S3 does when it is overloaded."""

    def __init__(self, client: Any, failing_key: str) -> None:
        self._client = client
        self._failing_key = failing_key

    def get_object(self, **params: Any) -> Any:
        if params["Key"] == self._failing_key:
            raise ClientError(
                {"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."}}, "GetObject"
            )
        return self._client.get_object(**params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_one_failing_record_is_reported_and_the_others_succeed(handler_module, aws, monkeypatch):
    good_id, good_key, good_version = _uploaded(aws, JPEG, "image/jpeg")
    flaky_id, flaky_key, flaky_version = _uploaded(aws, PNG, "image/png")
    other_id, other_key, other_version = _uploaded(aws, PNG, "image/png")
    service = MediaService(
        MediaStore(aws.dynamodb, aws.table),
        FailingGets(aws.s3, flaky_key),
        BUCKET,
        clock_ms=lambda: NOW_MS,
        random_bytes=bytes,
    )
    monkeypatch.setattr(handler_module, "service", service)

    result = _invoke(
        handler_module,
        _sqs_record("m-good", _notification(_s3_record(good_key, len(JPEG), good_version))),
        _sqs_record("m-flaky", _notification(_s3_record(flaky_key, len(PNG), flaky_version))),
        _sqs_record("m-test", TEST_EVENT),
        _sqs_record("m-other", _notification(_s3_record(other_key, len(PNG), other_version))),
    )

    assert result == {"batchItemFailures": [{"itemIdentifier": "m-flaky"}]}
    assert (_status(aws, good_id), _status(aws, flaky_id), _status(aws, other_id)) == (
        "ready",
        "pending",
        "ready",
    )
    # SQS redelivers the failed message; once S3 recovers it goes through.
    monkeypatch.setattr(handler_module, "service", aws.service)
    retry = _invoke(
        handler_module, _sqs_record("m-flaky", _notification(_s3_record(flaky_key, len(PNG), flaky_version)))
    )
    assert retry == {"batchItemFailures": []}
    assert _status(aws, flaky_id) == "ready"


@pytest.mark.parametrize("body", ["not json", "[1, 2]", json.dumps({"Records": "nope"})])
def test_a_malformed_message_is_reported_for_the_dead_letter_queue(handler_module, aws, body):
    media_id, key, version = _uploaded(aws, JPEG, "image/jpeg")
    result = _invoke(
        handler_module,
        _sqs_record("m-bad", body),
        _sqs_record("m-good", _notification(_s3_record(key, len(JPEG), version))),
    )
    assert result == {"batchItemFailures": [{"itemIdentifier": "m-bad"}]}
    assert _status(aws, media_id) == "ready"


def test_end_to_end_through_moto_s3_notifications_and_sqs(handler_module, aws):
    """S3 -> SQS as moto delivers it (test event first), then the handler over the received batch."""
    requests = pytest.importorskip("requests")
    sqs = boto3.client("sqs", region_name=REGION, config=AWS_CONFIG)
    queue_url = sqs.create_queue(QueueName="aviary-media-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    aws.s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": queue_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "media/"}]}},
                }
            ]
        },
    )
    good = aws.service.create_upload("alice", "image/jpeg", len(JPEG))
    liar = aws.service.create_upload("alice", "image/jpeg", len(PNG))
    for upload, body in ((good, JPEG), (liar, PNG)):
        response = requests.put(upload["upload_url"], data=body, headers=upload["headers"], timeout=5)
        assert response.status_code == 200, response.text

    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert json.loads(messages[0]["Body"])["Event"] == "s3:TestEvent"
    batch = [_sqs_record(message["MessageId"], message["Body"]) for message in messages]

    assert _invoke(handler_module, *batch) == {"batchItemFailures": []}
    assert _status(aws, good["media_id"]) == "ready"
    assert _status(aws, liar["media_id"]) == "rejected"
    with pytest.raises(ClientError):
        aws.s3.get_object(Bucket=BUCKET, Key=media_object_key("alice", liar["media_id"]))


def test_a_sizeless_event_for_a_deleted_version_is_ignored_not_retried(handler_module, aws):
    media_id, key, version = _uploaded(aws, PNG, "image/jpeg")
    sizeless = _sqs_record("m-1", _notification(_s3_record(key, None, version)))
    assert _invoke(handler_module, sizeless) == {"batchItemFailures": []}
    assert _status(aws, media_id) == "rejected"
    assert _invoke(handler_module, sizeless) == {"batchItemFailures": []}


# -- accepted media cannot be swapped -------------------------------------------------------------------

OTHER_PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes([7]) * 100  # a valid PNG of the same size


def _process(handler_module, key: str, size: int, version_id: str | None) -> dict[str, Any]:
    return _invoke(handler_module, _sqs_record("m-1", _notification(_s3_record(key, size, version_id))))


def test_another_valid_file_put_to_an_accepted_uploads_url_is_removed_and_the_accepted_one_stays(
    handler_module, aws
):
    media_id, key, accepted = _uploaded(aws, PNG, "image/png")
    _process(handler_module, key, len(PNG), accepted)
    assert _status(aws, media_id) == "ready"

    # The upload URL stays valid for minutes: the same URL, another PNG of the declared size.
    later = aws.s3.put_object(Bucket=BUCKET, Key=key, Body=OTHER_PNG, ContentType="image/png")["VersionId"]
    assert _process(handler_module, key, len(OTHER_PNG), later) == {"batchItemFailures": []}

    assert aws.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == PNG
    listing = aws.s3.list_object_versions(Bucket=BUCKET, Prefix=key)
    assert [v["VersionId"] for v in listing.get("Versions", [])] == [accepted]
    assert _status(aws, media_id) == "ready"


def test_a_file_stored_with_another_content_type_than_declared_is_rejected(handler_module, aws):
    # S3 refuses a PUT whose Content-Type is not the one the URL was signed for; moto does not check.
    upload = aws.service.create_upload("alice", "image/png", len(PNG))
    key = media_object_key("alice", upload["media_id"])
    version = aws.s3.put_object(Bucket=BUCKET, Key=key, Body=PNG, ContentType="text/html")["VersionId"]

    _process(handler_module, key, len(PNG), version)

    record = aws.service.store.get(upload["media_id"])
    reason = "it was stored as text/html, not image/png as declared"
    assert (record.status, record.reason) == ("rejected", reason)
    assert aws.s3.list_object_versions(Bucket=BUCKET, Prefix=key).get("Versions", []) == []


def test_an_event_without_a_version_id_judges_the_version_it_reads(handler_module, aws):
    # moto's notifications leave out versionId; S3's always carry it.
    media_id, key, accepted = _uploaded(aws, PNG, "image/png")
    _process(handler_module, key, len(PNG), None)
    assert aws.service.store.get(media_id).accepted_version == accepted

    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=OTHER_PNG, ContentType="image/png")
    _process(handler_module, key, len(OTHER_PNG), None)

    assert aws.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == PNG
