"""Zonal autoshift of the timeline load balancer, with weekly practice runs judged by the per-AZ alarms."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_arczonalshift as arczonalshift
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from constructs import Construct


class ZonalAutoshift(Construct):
    """Lets AWS shift the load balancer's traffic away from an AZ it finds impaired.

    Autoshift needs practice runs: once a week ARC shifts traffic away from one AZ for a while, and
    ends the run early if the outcome alarm fires, i.e. if the AZs left could not carry the load.
    A practice run takes one outcome alarm, so the per-AZ alarms (unhealthy hosts, 5xx, p99 in any
    AZ) are joined in one composite alarm. It notifies nobody: its members already do.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        load_balancer: elbv2.IApplicationLoadBalancer,
        zone_alarms: Sequence[cloudwatch.IAlarm],
    ) -> None:
        super().__init__(scope, construct_id)
        self.outcome_alarm = cloudwatch.CompositeAlarm(
            self,
            "AnyZoneAlarm",
            alarm_rule=cloudwatch.AlarmRule.any_of(
                *(cloudwatch.AlarmRule.from_alarm(a, cloudwatch.AlarmState.ALARM) for a in zone_alarms)
            ),
            alarm_description="Aviary: some AZ of the read path is unhealthy, erroring or slow "
            "(the outcome alarm of zonal autoshift's practice runs)",
            actions_enabled=False,
        )
        self.configuration = arczonalshift.CfnZonalAutoshiftConfiguration(
            self,
            "Configuration",
            resource_identifier=load_balancer.load_balancer_arn,
            zonal_autoshift_status="ENABLED",
            practice_run_configuration=arczonalshift.CfnZonalAutoshiftConfiguration.PracticeRunConfigurationProperty(
                outcome_alarms=[
                    arczonalshift.CfnZonalAutoshiftConfiguration.ControlConditionProperty(
                        alarm_identifier=self.outcome_alarm.alarm_arn, type="CLOUDWATCH"
                    )
                ]
            ),
        )
