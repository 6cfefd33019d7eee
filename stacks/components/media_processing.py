"""Checks each upload by its content: S3 -> SQS (data stack) -> this function."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from aviary.consumer_settings import MediaProcessorSettings
from stacks.acknowledge import acknowledge
from stacks.components.write_function import EVENT_TIMEOUT, write_function


class MediaProcessing(Construct):
    """Reads the first bytes and the size of each new object; what is not what it claimed to be
    is deleted (that version, for good) and its record marked rejected."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        uploads: sqs.IQueue,
        bucket_arn: str,
        media_key: kms.IKey,
        media_table_arn: str,
        settings: MediaProcessorSettings,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = write_function(
            self,
            "Function",
            handler="lambda_functions.media_processor.handler.handler",
            service="media",
            settings=settings,
            timeout=EVENT_TIMEOUT,
            log_retention_days=log_retention_days,
            description="Aviary media processor: checks uploads by content",
        )
        self.function.add_event_source(
            sources.SqsEventSource(uploads, batch_size=10, report_batch_item_failures=True, max_concurrency=5)
        )
        objects = f"{bucket_arn}/media/*"
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:GetObjectVersion", "s3:DeleteObject", "s3:DeleteObjectVersion"],
                resources=[objects],
            )
        )
        acknowledge(
            self.function.role,
            f"AwsSolutions-IAM5[Resource::{objects}]",
            "The processor must read and, when rejected, delete any uploaded object; the wildcard "
            "covers only the media/ prefix of this region's media bucket.",
        )
        media_key.grant_decrypt(self.function)
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:PutItem"],
                resources=[media_table_arn],
            )
        )
