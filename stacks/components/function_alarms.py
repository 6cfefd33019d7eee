"""Alarms on the write path: errors, throttles, stream lag and anything left in a failure queue."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

ITERATOR_AGE_MS = 60_000  # a minute behind the stream: timelines are visibly stale


class FunctionAlarms(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: dict[str, lambda_.Function],
        stream_consumers: dict[str, lambda_.Function],
        failure_queues: dict[str, sqs.IQueue],
        topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        self.alarms: list[cloudwatch.Alarm] = []

        def alarm(name: str, metric: cloudwatch.IMetric, threshold: float, meaning: str) -> None:
            created = cloudwatch.Alarm(
                self,
                name,
                metric=metric,
                threshold=threshold,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=f"Aviary: {meaning}",
            )
            created.add_alarm_action(actions.SnsAction(topic))
            self.alarms.append(created)

        minute = Duration.minutes(1)
        for name, function in functions.items():
            alarm(f"{name}Errors", function.metric_errors(period=minute), 1, f"the {name} function fails")
            alarm(
                f"{name}Throttles",
                function.metric_throttles(period=minute),
                1,
                f"the {name} function is throttled",
            )
        for name, function in stream_consumers.items():
            age = function.metric("IteratorAge", statistic="Maximum", period=minute)
            alarm(
                f"{name}IteratorAge", age, ITERATOR_AGE_MS, f"{name} is more than a minute behind its stream"
            )
        for name, queue in failure_queues.items():
            depth = queue.metric_approximate_number_of_messages_visible(period=minute, statistic="Maximum")
            alarm(f"{name}Depth", depth, 1, f"records wait in {name} after exhausting their retries")
