"""A regional table of derived data (timelines, counts): rebuilt from the streams, not replicated."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from aviary.schema import TableSchema
from stacks.components.table_schema import add_local_indexes, local_table


class DerivedTable(Construct):
    """Named by CloudFormation: only this region's stream consumers and readers use it."""

    def __init__(self, scope: Construct, construct_id: str, *, schema: TableSchema) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(self, "Table", removal_policy=RemovalPolicy.RETAIN, **local_table(schema))
        add_local_indexes(self.table, schema)
