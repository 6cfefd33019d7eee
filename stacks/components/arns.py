"""ARNs of resources found by name rather than by reference: in another stack or region, or not made yet.

The stack builds them, so the partition is that of the stack's region (a literal once the region is
known, as cdk.json's enablePartitionLiterals asks), never an "aws" written here.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from constructs import Construct

from aviary import naming
from aviary.schema import TableSchema


def parameter_arn(scope: Construct, name: str, *, region: str | None = None) -> str:
    """An SSM parameter of this account, in this stack's region unless `region` says another."""
    return Stack.of(scope).format_arn(
        service="ssm",
        region=region,
        resource="parameter",
        resource_name=name.removeprefix("/"),  # a path's leading slash is the separator after "parameter"
        arn_format=ArnFormat.SLASH_RESOURCE_NAME,
    )


def source_table_arn(scope: Construct, schema: TableSchema, *, region: str) -> str:
    """A source table in `region`, by its derived name: in prod the replica in a region belongs to
    the primary region's data stack, so no stack holds a reference to it."""
    return Stack.of(scope).format_arn(
        service="dynamodb",
        region=region,
        resource="table",
        resource_name=naming.table_name(schema),
        arn_format=ArnFormat.SLASH_RESOURCE_NAME,
    )


def media_bucket_arn(scope: Construct, account: str, region: str) -> str:
    """The media bucket of `region`, by its derived name (bucket ARNs name no region and no account)."""
    return Stack.of(scope).format_arn(
        service="s3",
        region="",
        account="",
        resource=naming.media_bucket_name(account, region),
        arn_format=ArnFormat.NO_RESOURCE_NAME,
    )


def any_key_arn(scope: Construct, *, region: str) -> str:
    """Every KMS key of this account in `region`: for keys whose IDs are not known at synth."""
    return Stack.of(scope).format_arn(
        service="kms",
        region=region,
        resource="key",
        resource_name="*",
        arn_format=ArnFormat.SLASH_RESOURCE_NAME,
    )
