"""The one shape of bucket that receives AWS access logs (S3 server access logs, ALB logs)."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.acknowledge import acknowledge, skip_checkov


def access_log_bucket(
    scope: Construct,
    construct_id: str,
    *,
    retention_days: int,
    receives: str,
    object_ownership: s3.ObjectOwnership = s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
) -> s3.Bucket:
    """A private, TLS-only bucket that keeps logs for `retention_days`.

    A function, not a construct, so the bucket's logical ID stays what it was in its scope.
    `object_ownership` stays enforced (no ACLs) unless the log writer needs ACLs (CloudFront).
    """
    bucket = s3.Bucket(
        scope,
        construct_id,
        # Neither S3 server access logging nor ALB log delivery can write to a KMS-encrypted bucket.
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        object_ownership=object_ownership,
        lifecycle_rules=[s3.LifecycleRule(id="expire-logs", expiration=Duration.days(retention_days))],
        removal_policy=RemovalPolicy.RETAIN,
    )
    acknowledge(
        bucket,
        "AwsSolutions-S1",
        f"This bucket receives {receives}; logging access to the log bucket itself would add "
        "a bucket whose logs nobody reads, or loop.",
    )
    skip_checkov(
        bucket,
        "CKV_AWS_18",
        f"This bucket receives {receives}; logging access to the log bucket itself would add a "
        "bucket whose logs nobody reads, or loop.",
    )
    skip_checkov(
        bucket,
        "CKV_AWS_21",
        "Logs are written once and expire after the retention period; versioning would only keep "
        "what the lifecycle rule is there to delete.",
    )
    return bucket
