"""Fan-out: this region's tweet stream -> this region's Timelines table."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from constructs import Construct

from stacks.acknowledge import acknowledge
from stacks.components.queues import failure_queue
from stacks.components.write_function import EVENT_TIMEOUT, write_function


class TweetFanout(Construct):
    """Reads the stream of this region's tweets replica (local and replicated writes alike), so
    every region materialises its own timelines from every tweet, exactly once per region."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stream_arn: str,
        environment: dict[str, str],
        read_table_arns: list[str],
        timelines_table_arn: str,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = write_function(
            self,
            "Function",
            handler="lambda_functions.fanout.handler.handler",
            service="fanout",
            environment=environment,
            timeout=EVENT_TIMEOUT,
            log_retention_days=log_retention_days,
            description="Aviary fan-out: tweet stream -> regional timelines",
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"],
                resources=[stream_arn],
            )
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["dynamodb:ListStreams"], resources=["*"])
        )
        acknowledge(
            self.function.role,
            "AwsSolutions-IAM5[Resource::*]",
            "dynamodb:ListStreams cannot be limited to a resource (AWS documents it as '*' only); "
            "it lists stream ARNs and reads no data.",
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["dynamodb:GetItem", "dynamodb:Query"], resources=read_table_arns)
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                # Query: trimming a timeline to its cap reads which entries are the oldest.
                actions=[
                    "dynamodb:BatchWriteItem",
                    "dynamodb:PutItem",
                    "dynamodb:DeleteItem",
                    "dynamodb:Query",
                ],
                resources=[timelines_table_arn],
            )
        )

        self.failures = failure_queue(self, "Failures", holds="tweet stream records")
        self.mapping = lambda_.EventSourceMapping(
            self,
            "FromStream",
            target=self.function,
            event_source_arn=stream_arn,
            starting_position=lambda_.StartingPosition.TRIM_HORIZON,
            batch_size=100,
            max_batching_window=Duration.seconds(1),
            bisect_batch_on_error=True,  # one poison record cannot hold back its whole batch
            retry_attempts=5,
            max_record_age=Duration.hours(6),
            report_batch_item_failures=True,
            parallelization_factor=2,
            on_failure=sources.SqsDlq(self.failures),
        )
