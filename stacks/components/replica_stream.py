"""The stream ARN of this region's replica of a global table, looked up at deploy time.

CDK does not expose a replica's stream ARN (aws/aws-cdk#31335), and it is not derivable
from the table name, so the consumer's own region asks DynamoDB for it.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import custom_resources as cr
from constructs import Construct

from stacks.acknowledge import acknowledge
from stacks.components.provider_logs import sdk_call


class ReplicaStream(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, table_name: str, table_arn: str, log_retention_days: int
    ) -> None:
        super().__init__(scope, construct_id)
        describe = cr.AwsSdkCall(
            service="DynamoDB",
            action="describeTable",
            parameters={"TableName": table_name},
            physical_resource_id=cr.PhysicalResourceId.of(f"{table_name}-stream"),
            output_paths=["Table.LatestStreamArn"],
        )
        lookup = sdk_call(
            self,
            "Lookup",
            log_retention_days=log_retention_days,
            on_create=describe,
            on_update=describe,
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [iam.PolicyStatement(actions=["dynamodb:DescribeTable"], resources=[table_arn])]
            ),
        )
        self.stream_arn = lookup.get_response_field("Table.LatestStreamArn")
        # The singleton is the stack's child, whichever construct asks for the lookup.
        acknowledge(
            Stack.of(self),
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "CDK's AwsCustomResource provider function is a stack singleton whose role CDK creates; "
            "the managed policy only lets it write its own CloudWatch logs.",
        )
