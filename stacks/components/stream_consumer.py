"""A function reading one of this region's DynamoDB streams, with the discipline every consumer shares."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from constructs import Construct

from aviary.settings import EnvironmentSettings
from stacks.acknowledge import acknowledge
from stacks.components.queues import failure_queue
from stacks.components.write_function import EVENT_TIMEOUT, write_function


class StreamConsumer(Construct):
    """Reads the stream of this region's replica (local and replicated writes alike), so every region
    derives its own data from every change, exactly once per region. Batches of 100, bisect on a
    function error, bounded retries and record age, partial batch responses, an on-failure queue.
    `filters` narrow the records delivered at all (Lambda event filtering patterns, any of which
    lets a record through), when a consumer needs only some."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler: str,
        service: str,
        description: str,
        holds: str,
        stream_arn: str,
        settings: EnvironmentSettings,
        log_retention_days: int,
        filters: tuple[dict[str, Any], ...] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = write_function(
            self,
            "Function",
            handler=handler,
            service=service,
            settings=settings,
            timeout=EVENT_TIMEOUT,
            log_retention_days=log_retention_days,
            description=description,
        )
        reading = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"]
        self.grant(reading, [stream_arn])
        self.grant(["dynamodb:ListStreams"], ["*"])
        acknowledge(
            self.function.role,
            "AwsSolutions-IAM5[Resource::*]",
            "dynamodb:ListStreams cannot be limited to a resource (AWS documents it as '*' only); "
            "it lists stream ARNs and reads no data.",
        )

        self.failures = failure_queue(self, "Failures", holds=holds)
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
            filters=[lambda_.FilterCriteria.filter(pattern) for pattern in filters] or None,
        )

    def grant(self, actions: list[str], resources: list[str]) -> None:
        self.function.add_to_role_policy(iam.PolicyStatement(actions=actions, resources=resources))
