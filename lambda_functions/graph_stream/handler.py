"""Lambda: the social graph's stream (local and replicated writes) -> this region's like and follower
counts (aviary.counts). Settings are read at import; the client is built on the first batch."""

from __future__ import annotations

import os
from collections import Counter

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.metrics import Metrics, MetricUnit

from aviary.clients import client
from aviary.consumer_settings import EdgeCountsSettings
from aviary.counts import CountChange, EdgeCounter
from lambda_functions.first_use import BuiltOnFirstUse
from lambda_functions.stream_batches import Handler, stream_handler

# A missing table name fails the cold start, naming its variable, not every record after it.
SETTINGS = EdgeCountsSettings.from_environment(os.environ)

logger = Logger(service="graph-stream")
metrics = Metrics(namespace="Aviary", service="graph-stream")


def build_handler(counter: EdgeCounter, *, logger: Logger = logger, metrics: Metrics = metrics) -> Handler:
    def report(changes: list[CountChange], failed: int) -> None:
        counted = Counter(change.delta for change in changes)
        metrics.add_metric(name="EdgesCounted", unit=MetricUnit.Count, value=counted[1])
        metrics.add_metric(name="EdgesUncounted", unit=MetricUnit.Count, value=counted[-1])
        metrics.add_metric(name="GraphRecordsFailed", unit=MetricUnit.Count, value=failed)

    # Looked up per record: the counter is built on first use, not when the handler is made.
    return stream_handler(
        lambda record: counter.handle(record), logger=logger, metrics=metrics, report=report
    )


handler = build_handler(BuiltOnFirstUse(lambda: EdgeCounter(client("dynamodb"), SETTINGS.counts_table)))
