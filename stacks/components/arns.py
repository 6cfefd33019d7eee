"""ARNs of resources found by name rather than by reference: in another stack or region, or not made yet.

The stack builds them, so the partition is that of the stack's region (a literal once the region is
known, as cdk.json's enablePartitionLiterals asks), never an "aws" written here.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from constructs import Construct


def parameter_arn(scope: Construct, name: str, *, region: str | None = None) -> str:
    """An SSM parameter of this account, in this stack's region unless `region` says another."""
    return Stack.of(scope).format_arn(
        service="ssm",
        region=region,
        resource="parameter",
        resource_name=name.removeprefix("/"),  # a path's leading slash is the separator after "parameter"
        arn_format=ArnFormat.SLASH_RESOURCE_NAME,
    )


def table_arn(scope: Construct, table_name: str, *, region: str) -> str:
    """A DynamoDB table of this account in `region`."""
    return Stack.of(scope).format_arn(
        service="dynamodb",
        region=region,
        resource="table",
        resource_name=table_name,
        arn_format=ArnFormat.SLASH_RESOURCE_NAME,
    )


def bucket_arn(scope: Construct, bucket_name: str) -> str:
    """An S3 bucket (bucket ARNs name no region and no account)."""
    return Stack.of(scope).format_arn(
        service="s3", region="", account="", resource=bucket_name, arn_format=ArnFormat.NO_RESOURCE_NAME
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
