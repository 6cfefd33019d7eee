"""Lambda: the tweets table's stream (local and replicated writes) -> this region's Timelines table.

Settings are read at import; the DynamoDB client and the fan-out are built on the first batch and
kept for the life of the process. A record that fails is reported as a batch item failure, so the
event source retries from it without failing the records that went through.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any, Protocol

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.metrics import Metrics, MetricUnit

from aviary.clients import client
from aviary.fanout import (
    FanoutResult,
    FanoutService,
    LiveTweets,
    TimelineTrimmer,
    TimelineWriter,
)
from aviary.followers import FollowerDirectory
from aviary.timeline_settings import TimelineSettings
from lambda_functions.first_use import BuiltOnFirstUse
from lambda_functions.stream_batches import Handler, stream_handler

# A missing or malformed setting fails the cold start, naming its variable, not every record after it.
SETTINGS = TimelineSettings.from_environment(os.environ)

logger = Logger(service="fanout")
metrics = Metrics(namespace="Aviary", service="fanout")


class RecordHandler(Protocol):
    def handle(self, record: dict[str, Any]) -> FanoutResult: ...


def build_service(dynamodb_client: Any) -> FanoutService:
    """The fan-out over this region's tables, from the settings read at import."""
    writer = TimelineWriter(dynamodb_client, SETTINGS.timelines_table, sleep=time.sleep)
    return FanoutService(
        FollowerDirectory(dynamodb_client, SETTINGS.social_graph_table, SETTINGS.counts_table),
        writer,
        SETTINGS.celebrity_threshold,
        retention_days=SETTINGS.retention_days,
        trimmer=TimelineTrimmer(
            dynamodb_client, SETTINGS.timelines_table, SETTINGS.max_entries, writer=writer
        ),
        live_tweets=LiveTweets(dynamodb_client, SETTINGS.tweets_table),
    )


def build_handler(
    fanout_service: RecordHandler, *, logger: Logger = logger, metrics: Metrics = metrics
) -> Handler:
    """A Lambda handler applying each record of a DynamoDB stream batch through `fanout_service`."""

    def report(results: list[FanoutResult], failed: int) -> None:
        totals = Counter(result.action for result in results)
        for result in results:
            totals["written"] += result.written
            totals["deleted"] += result.deleted
            totals["celebrity"] += result.celebrity
            totals["trimmed"] += result.trimmed
            totals["buried"] += result.retweets_buried
        metrics.add_metric(name="TimelineEntriesWritten", unit=MetricUnit.Count, value=totals["written"])
        metrics.add_metric(name="TimelineEntriesDeleted", unit=MetricUnit.Count, value=totals["deleted"])
        metrics.add_metric(name="TimelineEntriesTrimmed", unit=MetricUnit.Count, value=totals["trimmed"])
        metrics.add_metric(name="CelebrityRecords", unit=MetricUnit.Count, value=totals["celebrity"])
        metrics.add_metric(name="RetweetsBuried", unit=MetricUnit.Count, value=totals["buried"])
        metrics.add_metric(name="FanoutRecordsFailed", unit=MetricUnit.Count, value=failed)

    # Looked up per record: the service is built on first use, not when the handler is made.
    return stream_handler(
        lambda record: fanout_service.handle(record), logger=logger, metrics=metrics, report=report
    )


handler = build_handler(BuiltOnFirstUse(lambda: build_service(client("dynamodb"))))
