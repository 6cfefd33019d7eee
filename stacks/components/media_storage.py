"""One region's media bucket, its KMS key and the bucket that receives its access logs."""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from aviary import naming
from aviary.keys import MEDIA_KEY_PREFIX
from stacks.components import arns
from stacks.components.access_logs import access_log_bucket
from stacks.components.queues import failure_queue, waive_kms_only_encryption_check


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

        # Accepted media is read through CloudFront (stacks/components/media_distribution.py, in
        # another region's stack): any distribution of this account may read media/, through origin
        # access control, and have the key decrypt for it. The distribution's ARN cannot be known
        # here without a reference across regions; only this account can create distributions.
        distributions_of_this_account = Stack.of(self).format_arn(
            service="cloudfront",
            region="",  # CloudFront is global
            account=account,
            resource="distribution",
            resource_name="*",
            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
        )
        cloudfront_of_this_account = {
            "StringEquals": {"aws:SourceAccount": account},
            "ArnLike": {"aws:SourceArn": distributions_of_this_account},
        }
        self.bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudFrontReadsMedia",
                principals=[iam.ServicePrincipal("cloudfront.amazonaws.com")],
                actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=[self.bucket.arn_for_objects(f"{MEDIA_KEY_PREFIX}*")],
                conditions=cloudfront_of_this_account,
            )
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudFrontDecryptsMedia",
                principals=[iam.ServicePrincipal("cloudfront.amazonaws.com")],
                actions=["kms:Decrypt"],
                resources=["*"],  # in a key policy, "*" is this key
                conditions=cloudfront_of_this_account,
            )
        )

        # New uploads are announced on a queue (S3 -> SQS -> Lambda), which gives the media
        # processor retries and a dead-letter queue. Written on the bucket itself rather than
        # with add_event_notification, whose custom-resource Lambda moto cannot run.
        self.upload_failures = failure_queue(self, "UploadFailures", holds="upload notifications")
        self.uploads = sqs.Queue(
            self,
            "Uploads",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=Duration.minutes(3),  # six times the processor's timeout
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.upload_failures, max_receive_count=5),
        )
        waive_kms_only_encryption_check(self.uploads)
        bucket_arn = arns.media_bucket_arn(self, account, region)
        uploads_policy = self.uploads.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("s3.amazonaws.com")],
                actions=["sqs:SendMessage"],
                resources=[self.uploads.queue_arn],
                conditions={
                    "ArnEquals": {"aws:SourceArn": bucket_arn},
                    "StringEquals": {"aws:SourceAccount": account},
                },
            )
        )
        cfn_bucket = self.bucket.node.default_child
        cfn_bucket.add_property_override(
            "NotificationConfiguration.QueueConfigurations",
            [
                {
                    "Event": "s3:ObjectCreated:*",
                    "Queue": self.uploads.queue_arn,
                    "Filter": {"S3Key": {"Rules": [{"Name": "prefix", "Value": MEDIA_KEY_PREFIX}]}},
                }
            ],
        )
        # S3 checks that it may send to the queue when the configuration is put.
        if uploads_policy.policy_dependable:
            cfn_bucket.node.add_dependency(uploads_policy.policy_dependable)
