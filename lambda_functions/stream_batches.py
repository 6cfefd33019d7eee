"""A DynamoDB stream handler with Powertools batch processing and partial batch responses.

Every record is attempted even after one fails; a failing record is logged and reported as a batch
item failure, so the event source retries from it without failing the records that went through.
When all fail the response lists them all (no exception), so the event source retries the same way
whatever the batch size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.metrics import Metrics
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

Result = TypeVar("Result")
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def stream_handler(
    apply: Callable[[dict[str, Any]], Result],
    *,
    logger: Logger,
    metrics: Metrics,
    report: Callable[[list[Result], int], None],
) -> Handler:
    """A Lambda handler calling `apply` on each record's plain dict; `report(results, failed)` adds
    one value per metric per invocation rather than one per record."""
    processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)

    @metrics.log_metrics
    @logger.inject_lambda_context(clear_state=True)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        results: list[Result] = []

        def record_handler(record: DynamoDBRecord) -> None:
            raw = record.raw_event
            try:
                results.append(apply(raw))
            except Exception:
                logger.exception(
                    "a stream record failed; it will be retried",
                    extra={
                        "event_name": raw.get("eventName"),
                        "sequence_number": raw.get("dynamodb", {}).get("SequenceNumber"),
                    },
                )
                raise

        response = process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
        report(results, len(response["batchItemFailures"]))
        return response

    return handler
