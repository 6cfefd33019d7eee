"""The public entry of a region's read path: ALB -> per-AZ timeline hosts."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from constructs import Construct

from stacks.acknowledge import acknowledge, skip_checkov
from stacks.components.access_logs import access_log_bucket

SERVICE_PORT = 8080
HTTPS_PORT = 443
HTTP_PORT = 80
# TLS 1.3 and 1.2 with the post-quantum (ML-KEM) hybrid key exchange, and none of 1.2's CBC ciphers.
TLS_POLICY = elbv2.SslPolicy.TLS13_12_RES_PQ


def dns_failover_percentage(*, hosts_per_az: int, hosts_needed_per_az: int) -> int:
    """The share of an AZ's hosts that must be healthy for its load balancer node to stay in DNS.

    DNS spreads clients evenly over the nodes in it, and with cross-zone load balancing off each
    node sends only to its own AZ's hosts, so an AZ serves 1/AZs of the region's traffic however
    many of its hosts are healthy. It carries that share with `hosts_needed_per_az`
    (ceil(required / AZs)) healthy hosts; the fleet holds ceil(required / (AZs - 1)) per AZ, so
    that the other AZs carry the whole load without one of them. Below the share, the node is
    better out of DNS: its clients move to AZs sized to take them. The load balancer acts when
    the healthy share is *below* the threshold, so it is rounded down: exactly the hosts needed
    keep the AZ in DNS, one fewer takes it out (66 % with the default 6 hosts over 3 AZs: 2 of 3).
    """
    if not 1 <= hosts_needed_per_az <= hosts_per_az:
        raise ValueError(f"an AZ needs 1 to {hosts_per_az} healthy hosts, not {hosts_needed_per_az}")
    return 100 * hosts_needed_per_az // hosts_per_az


class TimelineLoadBalancer(Construct):
    """Internet-facing ALB in the public subnets with one target group for the hosts.

    Cross-zone load balancing is off in the target group, so each AZ's load balancer node
    only sends to hosts in its own AZ: a sick AZ's hosts cannot drag the others down, and
    the AZ is removed as a whole by the ALB's own health checks or by a zonal shift, which the
    load balancer allows. An AZ left with too few healthy hosts for its share of the traffic
    leaves DNS on its own (see dns_failover_percentage).

    With a certificate (prod) clients speak HTTPS on 443 and port 80 is closed rather than
    redirected: a client that sends a bearer token to http:// has already sent it in clear text by
    the time a redirect answers, so it should fail to connect instead. Without one (local: moto
    cannot issue certificates) the listener is plain HTTP on 80, as the local front door is.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        log_retention_days: int,
        certificate: acm.ICertificate | None,
        hosts_per_az: int,
        hosts_needed_per_az: int,
    ) -> None:
        super().__init__(scope, construct_id)

        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description=f"Aviary ALB: {'HTTPS' if certificate else 'HTTP'} from the internet",
            allow_all_outbound=False,
        )
        self.port = HTTPS_PORT if certificate else HTTP_PORT
        self.security_group.add_ingress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(self.port), "clients")
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
        # An AZ can be taken out of service by a zonal shift (by hand, or by zonal autoshift in prod).
        # CDK offers a property for this on network load balancers only.
        self.alb.set_attribute("zonal_shift.config.enabled", "true")
        self.alb.log_access_logs(access_logs, "alb")

        self.target_group = elbv2.ApplicationTargetGroup(
            self,
            "Hosts",
            vpc=vpc,
            port=SERVICE_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            target_type=elbv2.TargetType.INSTANCE,
            cross_zone_enabled=False,
            target_group_health=elbv2.TargetGroupHealth(
                dns_minimum_healthy_target_percentage=dns_failover_percentage(
                    hosts_per_az=hosts_per_az, hosts_needed_per_az=hosts_needed_per_az
                ),
                # Routing fails open (sends to unhealthy hosts too) only when an AZ has no healthy
                # host left, as by default: a node leaving DNS still has clients until their cached
                # answer expires, and those are better served by its remaining healthy hosts than
                # spread over hosts that fail their checks.
                routing_minimum_healthy_target_count=1,
                routing_minimum_healthy_target_percentage=0,  # off
            ),
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
        if certificate is not None:
            self.listener = self.alb.add_listener(
                "Https",
                port=HTTPS_PORT,
                protocol=elbv2.ApplicationProtocol.HTTPS,
                ssl_policy=TLS_POLICY,
                certificates=[elbv2.ListenerCertificate.from_certificate_manager(certificate)],
                open=False,
                default_target_groups=[self.target_group],
            )
            return
        self.listener = self.alb.add_listener(
            "Http",
            port=HTTP_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            open=False,
            default_target_groups=[self.target_group],
        )
        local_only = (
            "Local stage only: moto cannot issue certificates and the local runtime serves the read "
            "path over HTTP on loopback; prod listens with HTTPS on 443 only."
        )
        for check in ("CKV_AWS_2", "CKV_AWS_103"):
            skip_checkov(self.listener, check, local_only)
        skip_checkov(self.security_group, "CKV_AWS_260", local_only)
