"""Builds DynamoDB tables (in moto or DynamoDB Local) from aviary.schema, so tests and drills use exactly
the keys the stacks deploy."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aviary.naming import table_name
from aviary.schema import KeyAttribute, TableSchema


def _key_schema(partition: KeyAttribute, sort: KeyAttribute | None) -> list[dict[str, str]]:
    keys = [{"AttributeName": partition.name, "KeyType": "HASH"}]
    if sort is not None:
        keys.append({"AttributeName": sort.name, "KeyType": "RANGE"})
    return keys


def create_table(dynamodb_client: Any, schema: TableSchema, name: str | None = None) -> str:
    """One on-demand table with its indexes (projecting all attributes), stream and TTL; its name."""
    name = name or table_name(schema)
    attributes: dict[str, str] = {}
    for key in (schema.partition_key, schema.sort_key):
        if key is not None:
            attributes[key.name] = key.type
    request: dict[str, Any] = {
        "TableName": name,
        "KeySchema": _key_schema(schema.partition_key, schema.sort_key),
        "BillingMode": "PAY_PER_REQUEST",
    }
    if schema.indexes:
        request["GlobalSecondaryIndexes"] = [
            {
                "IndexName": index.name,
                "KeySchema": _key_schema(index.partition_key, index.sort_key),
                "Projection": {"ProjectionType": "ALL"},
            }
            for index in schema.indexes
        ]
        for index in schema.indexes:
            for key in (index.partition_key, index.sort_key):
                if key is not None:
                    attributes[key.name] = key.type
    if schema.streamed:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    request["AttributeDefinitions"] = [
        {"AttributeName": attr, "AttributeType": kind} for attr, kind in attributes.items()
    ]
    dynamodb_client.create_table(**request)
    if schema.ttl_attribute:
        dynamodb_client.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": schema.ttl_attribute},
        )
    return name


def create_tables(dynamodb_client: Any, schemas: Iterable[TableSchema]) -> dict[str, str]:
    """Every table in `schemas`, named as aviary.naming names it; returns role -> table name."""
    return {schema.role: create_table(dynamodb_client, schema) for schema in schemas}
