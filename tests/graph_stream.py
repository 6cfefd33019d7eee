"""Counts as a region's graph-stream consumer derives them: the social graph's whole stream through
EdgeCounter. Counting is idempotent, so a test may count again after every change."""

from __future__ import annotations

from typing import Any

import boto3

from aviary.clients import AWS_CONFIG
from aviary.counts import EdgeCounter
from tools.local_aws.event_sources import lambda_stream_record, records_after


def count_graph_stream(dynamodb: Any, graph_table: str, counts_table: str, region: str = "us-east-1") -> None:
    streams = boto3.client("dynamodbstreams", region_name=region, config=AWS_CONFIG)
    arn = dynamodb.describe_table(TableName=graph_table)["Table"]["LatestStreamArn"]
    counter = EdgeCounter(dynamodb, counts_table)
    for record in records_after(streams, arn, None, limit=1000):
        counter.handle(lambda_stream_record(record, stream_arn=arn, region=region))
