"""Lambda: the social graph's stream (local and replicated writes) -> this region's timelines, for
follows and unfollows (aviary.follow_timelines). Only FOLLOWS# records reach it (an event filter);
settings are read at import, the client is built on the first batch."""

from __future__ import annotations

import os
from collections import Counter

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.metrics import Metrics, MetricUnit

from aviary.clients import client
from aviary.follow_timelines import FollowResult, FollowTimelines
from aviary.timeline_settings import TimelineSettings
from lambda_functions.first_use import BuiltOnFirstUse
from lambda_functions.stream_batches import Handler, stream_handler

# A missing or malformed setting fails the cold start, not every record after it.
SETTINGS = TimelineSettings.from_environment(os.environ)

logger = Logger(service="follow-stream")
metrics = Metrics(namespace="Aviary", service="follow-stream")


def build_handler(
    follows: FollowTimelines, *, logger: Logger = logger, metrics: Metrics = metrics
) -> Handler:
    def report(results: list[FollowResult], failed: int) -> None:
        totals: Counter[str] = Counter()
        for result in results:
            totals[result.action] += 1
            totals["written"] += result.written
            totals["deleted"] += result.deleted
        metrics.add_metric(name="FollowsBackfilled", unit=MetricUnit.Count, value=totals["backfill"])
        metrics.add_metric(name="UnfollowsRemoved", unit=MetricUnit.Count, value=totals["remove"])
        metrics.add_metric(name="TimelineEntriesWritten", unit=MetricUnit.Count, value=totals["written"])
        metrics.add_metric(name="TimelineEntriesDeleted", unit=MetricUnit.Count, value=totals["deleted"])
        metrics.add_metric(name="FollowRecordsFailed", unit=MetricUnit.Count, value=failed)

    # Looked up per record: the service is built on first use, not when the handler is made.
    return stream_handler(
        lambda record: follows.handle(record), logger=logger, metrics=metrics, report=report
    )


handler = build_handler(BuiltOnFirstUse(lambda: FollowTimelines(client("dynamodb"), SETTINGS)))
