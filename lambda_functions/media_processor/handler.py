"""Media processor: SQS messages of S3 ObjectCreated notifications, judged by aviary.media.

A failing message is reported in batchItemFailures, so SQS redelivers only it (then the DLQ).
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.metrics import Metrics, MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from aviary.clients import client
from aviary.consumer_settings import MediaProcessorSettings
from aviary.media import IGNORED, MediaService, MediaStore
from lambda_functions.first_use import BuiltOnFirstUse

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

# Read once per process; a missing variable fails the cold start, naming it, not every event.
SETTINGS = MediaProcessorSettings.from_environment(os.environ)
TEST_EVENT = "s3:TestEvent"

logger = Logger(service="media")
metrics = Metrics(namespace="Aviary", service="media")
processor = BatchProcessor(event_type=EventType.SQS)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def build_service(
    dynamodb_client: Any,
    s3_client: Any,
    *,
    media_table: str = SETTINGS.media_table,
    media_bucket: str = SETTINGS.media_bucket,
) -> MediaService:
    """The media service over the given clients; tests build one against moto and swap it in."""
    return MediaService(
        MediaStore(dynamodb_client, media_table),
        s3_client,
        media_bucket,
        clock_ms=_now_ms,
        random_bytes=os.urandom,
    )


# record_handler looks `service` up per call, so tests can replace it.
service: Any = BuiltOnFirstUse(lambda: build_service(client("dynamodb"), client("s3")))


def object_key(s3_record: dict[str, Any]) -> str:
    """The object key of an S3 event record: S3 URL-encodes it, with + for spaces."""
    return unquote_plus(s3_record["s3"]["object"]["key"])


def process_s3_record(s3_record: dict[str, Any]) -> str:
    """One S3 event record: "ready", "rejected" or "ignored"; raises to have it retried."""
    outcome = _judge(s3_record)
    metrics.add_metric(name=f"Media{outcome.capitalize()}", unit=MetricUnit.Count, value=1)
    return outcome


def _judge(s3_record: dict[str, Any]) -> str:
    event_name = s3_record.get("eventName", "")
    bucket = s3_record.get("s3", {}).get("bucket", {}).get("name")
    if not event_name.removeprefix("s3:").startswith("ObjectCreated:"):
        logger.info("ignoring event", extra={"event_name": event_name})
        return IGNORED
    if bucket != service.bucket:
        logger.warning("ignoring event for another bucket", extra={"bucket": bucket})
        return IGNORED
    key = object_key(s3_record)
    s3_object = s3_record["s3"]["object"]
    version_id = s3_object.get("versionId")
    size = s3_object.get("size")
    # moto's notifications carry no version ID: the version read first is then the one judged.
    outcome = service.process_upload(key, version_id, None if size is None else int(size))
    logger.info("media processed", extra={"key": key, "version_id": version_id, "outcome": outcome})
    return outcome


def record_handler(record: SQSRecord) -> list[str]:
    """One SQS message: an S3 notification (usually one record) or the queue's s3:TestEvent."""
    message = json.loads(record.body)
    if not isinstance(message, dict):
        raise ValueError("message body is not an S3 event notification")
    if message.get("Event") == TEST_EVENT:
        # S3 sends this once when the notification is configured; there is nothing to process.
        logger.info("acknowledged s3:TestEvent", extra={"bucket": message.get("Bucket")})
        return []
    records = message.get("Records")
    if not isinstance(records, list):
        raise ValueError("message body is not an S3 event notification")
    return [process_s3_record(s3_record) for s3_record in records]


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
