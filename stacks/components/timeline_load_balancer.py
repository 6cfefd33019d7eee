"""The public entry of a region's read path: ALB -> per-AZ timeline hosts."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from constructs import Construct

from stacks.acknowledge import acknowledge
from stacks.components.access_logs import access_log_bucket

SERVICE_PORT = 8080


class TimelineLoadBalancer(Construct):
    """Internet-facing ALB in the public subnets with one target group for the hosts.

    Cross-zone load balancing is off in the target group, so each AZ's load balancer node
    only sends to hosts in its own AZ: a sick AZ's hosts cannot drag the others down, and
    the AZ is removed as a whole by the ALB's own health checks.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, vpc: ec2.IVpc, log_retention_days: int
    ) -> None:
        super().__init__(scope, construct_id)

        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="Aviary ALB: HTTP from the internet",
            allow_all_outbound=False,
        )
        self.security_group.add_ingress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(80), "clients")
        acknowledge(
            self.security_group,
            "AwsSolutions-EC23",
            "This is the public load balancer of the read path; it must accept client connections "
            "from any address, on the listener port only.",
        )

        access_logs = access_log_bucket(
            self, "AccessLogs", retention_days=log_retention_days, receives="the load balancer's access logs"
        )

        self.alb = elbv2.ApplicationLoadBalancer(
            self,
            "Alb",
            vpc=vpc,
            internet_facing=True,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            security_group=self.security_group,
            drop_invalid_header_fields=True,
            idle_timeout=Duration.seconds(10),
        )
        self.alb.log_access_logs(access_logs, "alb")

        self.target_group = elbv2.ApplicationTargetGroup(
            self,
            "Hosts",
            vpc=vpc,
            port=SERVICE_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            target_type=elbv2.TargetType.INSTANCE,
            cross_zone_enabled=False,
            deregistration_delay=Duration.seconds(20),
            health_check=elbv2.HealthCheck(
                path="/health",
                interval=Duration.seconds(10),
                timeout=Duration.seconds(5),
                healthy_threshold_count=2,
                unhealthy_threshold_count=2,
                healthy_http_codes="200",
            ),
        )
        self.listener = self.alb.add_listener(
            "Http",
            port=80,
            protocol=elbv2.ApplicationProtocol.HTTP,
            open=False,
            default_target_groups=[self.target_group],
        )
