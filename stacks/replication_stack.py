"""Per-region stack that turns on media replication once every region's bucket exists."""

from __future__ import annotations

from aws_cdk import Stack
from constructs import Construct

from stacks.acknowledge import acknowledge
from stacks.components.media_replication import MediaReplication
from stacks.config import DeploymentConfig


class MediaReplicationStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: DeploymentConfig, region: str, **kwargs
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.replication = MediaReplication(
            self,
            "MediaReplication",
            account=config.account,
            region=region,
            destinations=config.other_regions(region),
            log_retention_days=config.log_retention_days,
        )
        acknowledge(
            self,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "CDK's AwsCustomResource provider function is a stack singleton whose role CDK creates; "
            "the managed policy only lets it write its own CloudWatch logs.",
        )
