"""Lambda: the idempotency table's stream (its MODIFY records only, by the mapping's filter) -> a post
accepted twice for one request, in two regions, ends as one tweet (aviary.duplicates)."""

from __future__ import annotations

import os

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.metrics import Metrics, MetricUnit

from aviary.clients import client
from aviary.consumer_settings import DuplicatePostsSettings
from aviary.duplicates import DuplicatePosts, Resolution
from lambda_functions.first_use import BuiltOnFirstUse
from lambda_functions.stream_batches import Handler, stream_handler

# A missing table name fails the cold start, naming its variable, not every record after it.
SETTINGS = DuplicatePostsSettings.from_environment(os.environ)

logger = Logger(service="idempotency-stream")
metrics = Metrics(namespace="Aviary", service="idempotency-stream")


def build_handler(
    duplicates: DuplicatePosts, *, logger: Logger = logger, metrics: Metrics = metrics
) -> Handler:
    def report(resolutions: list[Resolution], failed: int) -> None:
        removed = sum(1 for resolution in resolutions if resolution.removed)
        for resolution in resolutions:
            if resolution.removed:
                logger.info(
                    "duplicate post removed", extra={"removed": resolution.removed, "kept": resolution.kept}
                )
        metrics.add_metric(name="DuplicatePostsRemoved", unit=MetricUnit.Count, value=removed)
        metrics.add_metric(name="IdempotencyRecordsFailed", unit=MetricUnit.Count, value=failed)

    # Looked up per record: the resolver is built on first use, not when the handler is made.
    return stream_handler(
        lambda record: duplicates.handle(record), logger=logger, metrics=metrics, report=report
    )


handler = build_handler(BuiltOnFirstUse(lambda: DuplicatePosts(client("dynamodb"), SETTINGS.tweets_table)))
