"""One region's media bucket, its KMS key and the bucket that receives its access logs."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from aviary import naming
from stacks.components.access_logs import access_log_bucket


class MediaStorage(Construct):
    """Versioned, private, KMS-encrypted, TLS-only media, under a name other regions can derive."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        account: str,
        region: str,
        noncurrent_version_days: int,
        access_log_days: int,
    ) -> None:
        super().__init__(scope, construct_id)

        self.key = kms.Key(
            self,
            "Key",
            description="Encrypts Aviary media at rest in this region",
            alias=naming.MEDIA_KEY_ALIAS,
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )

        self.access_logs = access_log_bucket(
            self, "AccessLogs", retention_days=access_log_days, receives="the media bucket's access logs"
        )

        self.bucket = s3.Bucket(
            self,
            "Bucket",
            bucket_name=naming.media_bucket_name(account, region),
            versioned=True,  # replication needs it on both sides; it also undoes overwrites
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,  # one KMS call per bucket key, not per object
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="media/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="abort-incomplete-uploads",
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                ),
                s3.LifecycleRule(
                    id="expire-old-versions",
                    noncurrent_version_expiration=Duration.days(noncurrent_version_days),
                    expired_object_delete_marker=True,
                ),
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
