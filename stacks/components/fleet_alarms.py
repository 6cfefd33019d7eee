"""Per-AZ alarms on the read path, so an operator sees which AZ is sick, not only that one is."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_sns as sns
from constructs import Construct

P99_LATENCY_SECONDS = 1.0
TARGET_5XX_PER_MINUTE = 5


class FleetAlarms(Construct):
    """Unhealthy hosts, target 5xx and p99 latency, for each AZ's slice of the target group."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        load_balancer: elbv2.ApplicationLoadBalancer,
        target_group: elbv2.ApplicationTargetGroup,
        availability_zones: tuple[str, ...],
        topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        self.alarms: list[cloudwatch.Alarm] = []

        def metric(name: str, statistic: str, az: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace="AWS/ApplicationELB",
                metric_name=name,
                statistic=statistic,
                period=Duration.minutes(1),
                dimensions_map={
                    "LoadBalancer": load_balancer.load_balancer_full_name,
                    "TargetGroup": target_group.target_group_full_name,
                    "AvailabilityZone": az,
                },
            )

        for index, az in enumerate(availability_zones, start=1):
            checks = (
                (
                    "UnhealthyHosts",
                    metric("UnHealthyHostCount", "Maximum", az),
                    1,
                    f"a timeline host in {az} fails health checks",
                ),
                (
                    "Target5xx",
                    metric("HTTPCode_Target_5XX_Count", "Sum", az),
                    TARGET_5XX_PER_MINUTE,
                    f"timeline hosts in {az} return 5xx",
                ),
                (
                    "LatencyP99",
                    metric("TargetResponseTime", "p99", az),
                    P99_LATENCY_SECONDS,
                    f"p99 timeline latency in {az} is high",
                ),
            )
            for name, watched, threshold, meaning in checks:
                alarm = cloudwatch.Alarm(
                    self,
                    f"Zone{index}{name}",
                    metric=watched,
                    threshold=threshold,
                    evaluation_periods=3,
                    datapoints_to_alarm=2,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                    alarm_description=f"Aviary: {meaning}",
                )
                alarm.add_alarm_action(actions.SnsAction(topic))
                self.alarms.append(alarm)
