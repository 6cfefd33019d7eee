"""The regional Timelines table: derived data, rebuilt from the tweet stream, not replicated."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from aviary.schema import TIMELINES
from stacks.components.table_schema import add_local_indexes, local_table


class TimelinesTable(Construct):
    """Named by CloudFormation: only this region's fan-out and hosts use it."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self, "Table", removal_policy=RemovalPolicy.RETAIN, **local_table(TIMELINES)
        )
        add_local_indexes(self.table, TIMELINES)
