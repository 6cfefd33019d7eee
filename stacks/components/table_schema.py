"""Turns aviary.schema table descriptions into CDK table properties, for both table APIs.

Every Aviary table shares the same durability settings: on-demand billing, encryption at
rest with the AWS managed key, point-in-time recovery, deletion protection.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import aws_dynamodb as dynamodb

from aviary.schema import KeyAttribute, TableSchema

_TYPES = {
    "S": dynamodb.AttributeType.STRING,
    "N": dynamodb.AttributeType.NUMBER,
    "B": dynamodb.AttributeType.BINARY,
}

PITR = dynamodb.PointInTimeRecoverySpecification(point_in_time_recovery_enabled=True)


def attribute(key: KeyAttribute | None) -> dynamodb.Attribute | None:
    return None if key is None else dynamodb.Attribute(name=key.name, type=_TYPES[key.type])


def local_table(
    schema: TableSchema, *, table_name: str | None = None, stream_every_change: bool = False
) -> dict[str, Any]:
    """Properties for a single-region `Table` (the regional Timelines, and every table in `local`).

    `stream_every_change` gives a table the stream a global table keeps for its replication,
    whether or not a consumer of ours reads it.
    """
    streamed = schema.streamed or stream_every_change
    return dict(
        table_name=table_name,
        partition_key=attribute(schema.partition_key),
        sort_key=attribute(schema.sort_key),
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        encryption=dynamodb.TableEncryption.AWS_MANAGED,
        point_in_time_recovery_specification=PITR,
        deletion_protection=True,
        time_to_live_attribute=schema.ttl_attribute,
        stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES if streamed else None,
    )


def add_local_indexes(table: dynamodb.Table, schema: TableSchema) -> None:
    for index in schema.indexes:
        table.add_global_secondary_index(
            index_name=index.name,
            partition_key=attribute(index.partition_key),
            sort_key=attribute(index.sort_key),
            projection_type=dynamodb.ProjectionType.ALL,
        )


def global_table(schema: TableSchema, *, table_name: str, replica_regions: tuple[str, ...]) -> dict[str, Any]:
    """Properties for a `TableV2` global table with a replica in each of `replica_regions`."""
    return dict(
        table_name=table_name,
        partition_key=attribute(schema.partition_key),
        sort_key=attribute(schema.sort_key),
        billing=dynamodb.Billing.on_demand(),
        encryption=dynamodb.TableEncryptionV2.aws_managed_key(),
        point_in_time_recovery_specification=PITR,
        deletion_protection=True,
        time_to_live_attribute=schema.ttl_attribute,
        dynamo_stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES if schema.streamed else None,
        global_secondary_indexes=[
            dynamodb.GlobalSecondaryIndexPropsV2(
                index_name=index.name,
                partition_key=attribute(index.partition_key),
                sort_key=attribute(index.sort_key),
                projection_type=dynamodb.ProjectionType.ALL,
            )
            for index in schema.indexes
        ]
        or None,
        replicas=[dynamodb.ReplicaTableProps(region=region) for region in replica_regions],
    )
