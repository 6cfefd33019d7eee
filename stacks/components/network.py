"""One region's VPC, laid over exactly the configured AZs."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.components.provider_logs import give_provider_log_group, log_group_with_retention

# Where CDK puts the provider of the VPC's default-security-group custom resource (a stack singleton).
RESTRICT_DEFAULT_SG_PROVIDER_ID = "Custom::VpcRestrictDefaultSGCustomResourceProvider"


class Network(Construct):
    """Public subnets for the load balancer only; isolated subnets for hosts and functions.

    There is no NAT gateway at all: S3 and DynamoDB are reached through gateway endpoints,
    so no single NAT can become a dependency shared by several AZs.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cidr: str,
        availability_zones: tuple[str, ...],
        log_retention_days: int,
        restrict_default_security_group: bool,
    ) -> None:
        super().__init__(scope, construct_id)

        flow_log_group = logs.LogGroup(self, "FlowLogs")
        # Set on the L1: the L2 only takes RetentionDays members, the config holds a day count.
        flow_log_group.node.default_child.retention_in_days = log_retention_days

        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(cidr),
            availability_zones=list(availability_zones),
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="Public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(
                    name="Private", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=20
                ),
            ],
            flow_logs={
                "All": ec2.FlowLogOptions(
                    destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_log_group),
                    traffic_type=ec2.FlowLogTrafficType.ALL,
                )
            },
            # Restricting the default group takes a custom-resource Lambda, which moto cannot run.
            restrict_default_security_group=restrict_default_security_group,
        )
        if restrict_default_security_group:
            # CDK builds that provider with no log group: see stacks/components/provider_logs.py.
            provider = Stack.of(self).node.find_child(RESTRICT_DEFAULT_SG_PROVIDER_ID)
            give_provider_log_group(
                provider.node.find_child("Handler"),
                log_group_with_retention(
                    self, "RestrictDefaultSecurityGroupLogs", retention_days=log_retention_days
                ),
            )
        # Children of the VPC, as the VPC's gateway_endpoints prop would make them (same IDs), but
        # kept so that whatever needs them at boot can be ordered after them.
        self.s3_endpoint = self.vpc.add_gateway_endpoint("S3", service=ec2.GatewayVpcEndpointAwsService.S3)
        self.dynamodb_endpoint = self.vpc.add_gateway_endpoint(
            "DynamoDB", service=ec2.GatewayVpcEndpointAwsService.DYNAMODB
        )

        # AWS APIs without a route to the internet: SSM (the hosts' token settings, and Session
        # Manager instead of SSH, with SsmMessages and Ec2Messages) and CloudFormation (a host's
        # readiness signal, cfn-signal). One endpoint network interface per AZ, so no AZ depends on
        # another for them.
        endpoint_security_group = ec2.SecurityGroup(
            self,
            "EndpointSecurityGroup",
            vpc=self.vpc,
            description="Aviary interface endpoints: HTTPS from inside the VPC",
            allow_all_outbound=False,
        )
        endpoint_security_group.add_ingress_rule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(443), "VPC to endpoints")
        self.interface_endpoints: dict[str, ec2.InterfaceVpcEndpoint] = {}
        for name, service in (
            ("Ssm", ec2.InterfaceVpcEndpointAwsService.SSM),
            ("SsmMessages", ec2.InterfaceVpcEndpointAwsService.SSM_MESSAGES),
            ("Ec2Messages", ec2.InterfaceVpcEndpointAwsService.EC2_MESSAGES),
            ("CloudFormation", ec2.InterfaceVpcEndpointAwsService.CLOUDFORMATION),
        ):
            self.interface_endpoints[name] = self.vpc.add_interface_endpoint(
                name,
                service=service,
                subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
                private_dns_enabled=True,
                security_groups=[endpoint_security_group],
                open=False,
            )
