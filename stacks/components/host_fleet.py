"""The timeline hosts of one region: one Auto Scaling group per AZ, all from one launch template."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, Stack
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from aviary.media_urls import MEDIA_BASE_URL_VARIABLE
from stacks.acknowledge import acknowledge
from stacks.components.timeline_load_balancer import SERVICE_PORT

# Public SSM parameters that always name the current Amazon Linux 2023 image: resolved by
# CloudFormation at deploy time, so synth makes no lookup and the template stays the same.
AMI_PARAMETERS = {
    "x86_64": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
    "arm64": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64",
}
ROOT_VOLUME_GIB = 8


def architecture_of(instance_type: str) -> str:
    """Graviton families carry a "g" after the generation digit (m6gd, c7gd, i4g, im4gn)."""
    family = instance_type.split(".")[0]
    generation = next((i for i, ch in enumerate(family) if ch.isdigit()), len(family))
    return "arm64" if "g" in family[generation + 1 :] else "x86_64"


@dataclass(frozen=True)
class HostSettings:
    """What a host needs to know at boot; written to /etc/aviary/timeline.env."""

    region: str
    timelines_table: str
    social_graph_table: str
    tweets_table: str
    counts_table: str
    celebrity_follower_threshold: int
    token_settings_parameter: str
    media_base_url: str  # what the media URLs in timeline pages start with

    def environment_file(self) -> str:
        values = {
            "AVIARY_REGION": self.region,
            "AVIARY_TIMELINES_TABLE": self.timelines_table,
            "AVIARY_SOCIAL_GRAPH_TABLE": self.social_graph_table,
            "AVIARY_TWEETS_TABLE": self.tweets_table,
            "AVIARY_COUNTS_TABLE": self.counts_table,
            "AVIARY_CELEBRITY_THRESHOLD": str(self.celebrity_follower_threshold),
            "AVIARY_CACHE_PATH": "/data/timeline-cache/cache.sqlite",
            "AVIARY_PORT": str(SERVICE_PORT),
            "AVIARY_TOKEN_SETTINGS_PARAMETER": self.token_settings_parameter,
            MEDIA_BASE_URL_VARIABLE: self.media_base_url,
        }
        return "\n".join(f"{key}={value}" for key, value in values.items())


class HostFleet(Construct):
    """Zonal fleets: each AZ's group has exactly one subnet, so placement is explicit and an AZ
    is a unit of failure. Each group alone is sized so that any one AZ can be lost with no
    scaling action (static stability).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        instance_type: str,
        hosts_per_az: int,
        bundle: s3_assets.Asset,
        settings: HostSettings,
        target_group: elbv2.ApplicationTargetGroup,
        load_balancer_security_group: ec2.ISecurityGroup,
        table_arns: list[str],
        index_arns: list[str],
    ) -> None:
        super().__init__(scope, construct_id)
        architecture = architecture_of(instance_type)

        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="Aviary timeline hosts: service port from the load balancer only",
            allow_all_outbound=False,
        )
        self.security_group.add_ingress_rule(
            load_balancer_security_group, ec2.Port.tcp(SERVICE_PORT), "load balancer to timeline service"
        )
        # HTTPS out reaches only what the VPC routes: the gateway and interface endpoints.
        self.security_group.add_egress_rule(ec2.Peer.ipv4("0.0.0.0/0"), ec2.Port.tcp(443), "AWS endpoints")
        load_balancer_security_group.add_egress_rule(
            self.security_group, ec2.Port.tcp(SERVICE_PORT), "to timeline hosts"
        )

        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description="Aviary timeline host: read tables, fetch its bundle, Session Manager",
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name("AmazonSSMManagedInstanceCore")],
        )
        acknowledge(
            self.role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore]",
            "Session Manager replaces SSH on these hosts; this AWS managed policy is the documented "
            "minimum for the SSM agent and grants no data access.",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"],
                resources=[*table_arns, *index_arns],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["ssm:GetParameter"],
                resources=[
                    f"arn:aws:ssm:{settings.region}:{Stack.of(self).account}:parameter"
                    f"{settings.token_settings_parameter}"
                ],
            )
        )
        # Exactly the one object, rather than grant_read's wildcards over the asset bucket.
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[bundle.bucket.arn_for_objects(bundle.s3_object_key)]
            )
        )

        self.launch_template = ec2.LaunchTemplate(
            self,
            "LaunchTemplate",
            instance_type=ec2.InstanceType(instance_type),
            machine_image=ec2.MachineImage.from_ssm_parameter(AMI_PARAMETERS[architecture]),
            role=self.role,
            security_group=self.security_group,
            user_data=self._user_data(bundle, settings),
            require_imdsv2=True,
            http_put_response_hop_limit=1,
            detailed_monitoring=True,
            # A small encrypted root only: all data lives on the instance-store disks.
            block_devices=[
                ec2.BlockDevice(
                    device_name="/dev/xvda",
                    volume=ec2.BlockDeviceVolume.ebs(
                        ROOT_VOLUME_GIB,
                        encrypted=True,
                        delete_on_termination=True,
                        volume_type=ec2.EbsDeviceVolumeType.GP3,
                    ),
                )
            ],
        )

        self.groups: dict[str, autoscaling.AutoScalingGroup] = {}
        for index, subnet in enumerate(vpc.isolated_subnets, start=1):
            group = autoscaling.AutoScalingGroup(
                self,
                f"Zone{index}",
                vpc=vpc,
                vpc_subnets=ec2.SubnetSelection(subnets=[subnet]),
                launch_template=self.launch_template,
                min_capacity=hosts_per_az,
                # Room to replace hosts before terminating old ones during an update.
                max_capacity=hosts_per_az * 2,
                health_checks=autoscaling.HealthChecks.with_additional_checks(
                    additional_types=[autoscaling.AdditionalHealthCheckType.ELB],
                    grace_period=Duration.minutes(3),
                ),
                group_metrics=[autoscaling.GroupMetrics.all()],
            )
            group.attach_to_application_target_group(target_group)
            acknowledge(
                group,
                "AwsSolutions-AS3",
                "Operators are told of unhealthy hosts by the per-AZ load balancer alarms; "
                "scaling-event notifications would only repeat them.",
            )
            self.groups[subnet.availability_zone] = group

    @staticmethod
    def _user_data(bundle: s3_assets.Asset, settings: HostSettings) -> ec2.UserData:
        user_data = ec2.UserData.for_linux()
        local_zip = user_data.add_s3_download_command(
            bucket=bundle.bucket, bucket_key=bundle.s3_object_key, local_file="/tmp/aviary-host.zip"
        )
        user_data.add_commands(
            "set -euo pipefail",
            # Amazon Linux repositories are served from S3, reachable through the gateway endpoint.
            "dnf install -y python3.11 mdadm xfsprogs unzip",
            "id aviary || useradd --system --no-create-home --shell /sbin/nologin aviary",
            "rm -rf /opt/aviary && mkdir -p /opt/aviary /etc/aviary",
            f"unzip -q {local_zip} -d /opt/aviary",
            "python3.11 -m venv /opt/aviary/venv",
            "/opt/aviary/venv/bin/pip install --no-index --find-links /opt/aviary/wheels "
            "-r /opt/aviary/hosts/requirements.txt",
            f"cat > /etc/aviary/timeline.env <<'ENV'\n{settings.environment_file()}\nENV",
            "cp /opt/aviary/hosts/systemd/*.service /etc/systemd/system/",
            "systemctl daemon-reload",
            # One timeline worker per vCPU: aviary-timeline@1.service, @2, ... share the port.
            "systemctl enable --now aviary-local-disks.service "
            "$(seq -f 'aviary-timeline@%g.service' $(nproc))",
        )
        return user_data
