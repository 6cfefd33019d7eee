"""The timeline hosts of one region: one Auto Scaling group per AZ, all from one launch template."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct, IDependable

from aviary.host_settings import TimelineHostSettings
from stacks.acknowledge import acknowledge
from stacks.components import arns
from stacks.components.timeline_load_balancer import SERVICE_PORT

# Public SSM parameters that always name the current Amazon Linux 2023 image: resolved by
# CloudFormation at deploy time, so synth makes no lookup and the template stays the same.
AMI_PARAMETERS = {
    "x86_64": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
    "arm64": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64",
}
ROOT_VOLUME_GIB = 8

# The worst case of each boot step, in seconds, each enforced on the host (a typical boot takes
# two to three minutes). The steps run in this order; a step that overruns fails the boot.
BOOT_STEP_SECONDS = {
    # dnf: repository metadata and five small packages from the Amazon Linux repositories, which
    # are served from S3 through the gateway endpoint (usually well under a minute).
    "packages": 240,
    # aws s3 cp of the host bundle (code and wheels, tens of MB) through the gateway endpoint.
    "bundle": 120,
    # unzip, a virtualenv and an offline pip install of the bundled wheels.
    "install": 180,
    # aviary-local-disks.service: mdadm and mkfs.xfs over the instance-store disks (its
    # TimeoutStartSec), then the workers start.
    "disks": 180,
    # The first 200 from GET /health: token settings from SSM, the first DynamoDB probe. The wait
    # runs until the deadline, so it has this long at least.
    "ready": 180,
}
# A host that has not answered 200 this long after its kernel started signals failure.
BOOT_DEADLINE = Duration.seconds(sum(BOOT_STEP_SECONDS.values()))
# From the group's launch request to the kernel starting (the deadline counts from there), and the
# signal's own trip to CloudFormation.
LAUNCH_ALLOWANCE = Duration.minutes(3)
# How long CloudFormation waits for a new host's signal, at creation and at each update batch.
SIGNAL_TIMEOUT = Duration.seconds(BOOT_DEADLINE.to_seconds() + LAUNCH_ALLOWANCE.to_seconds())
# Auto Scaling judges a host by the load balancer only after this: a host still booting within
# its bound is not replaced (which would start the boot over, in a loop). The extra minute is for
# the load balancer to see two passing checks 10 s apart once the host is ready.
HEALTH_CHECK_GRACE = Duration.seconds(SIGNAL_TIMEOUT.to_seconds() + 60)
# The RAID0 volume of the instance-store disks (hosts/systemd/aviary-local-disks.service): the
# cache lives there, and a host is not ready until it is mounted.
CACHE_MOUNT = "/data"
# Where the timeline service answers on the host itself, and what cfn-signal is installed as.
LOCAL_HEALTH_URL = f"http://127.0.0.1:{SERVICE_PORT}/health"
CFN_SIGNAL = "/opt/aws/bin/cfn-signal"
IMDS = "http://169.254.169.254/latest/meta-data"


def architecture_of(instance_type: str) -> str:
    """Graviton families carry a "g" after the generation digit (m6gd, c7gd, i4g, im4gn)."""
    family = instance_type.split(".")[0]
    generation = next((i for i, ch in enumerate(family) if ch.isdigit()), len(family))
    return "arm64" if "g" in family[generation + 1 :] else "x86_64"


def environment_file(settings: TimelineHostSettings) -> str:
    """The host's /etc/aviary/timeline.env: one VARIABLE=value a line, read by systemd."""
    return "\n".join(f"{name}={value}" for name, value in settings.to_environment().items())


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
        settings: TimelineHostSettings,
        target_group: elbv2.ApplicationTargetGroup,
        load_balancer_security_group: ec2.ISecurityGroup,
        table_arns: list[str],
        index_arns: list[str],
        boot_endpoints: Sequence[IDependable],
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
        )
        # Session Manager alone, in place of AmazonSSMManagedInstanceCore: that policy also allows
        # ssm:GetParameter(s) on every parameter (and Run Command, associations, inventory, patching),
        # which would void the one-parameter grant below. The SSM agent registers the host (its
        # heartbeat is authorized against the EC2 instance) and opens the session channels; none of
        # these actions reads data.
        instances = Stack.of(self).format_arn(
            service="ec2",
            region=settings.region,
            resource="instance",
            resource_name="*",
            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
        )
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["ssm:UpdateInstanceInformation"], resources=[instances])
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "ssmmessages:CreateControlChannel",
                    "ssmmessages:CreateDataChannel",
                    "ssmmessages:OpenControlChannel",
                    "ssmmessages:OpenDataChannel",
                ],
                resources=["*"],
            )
        )
        acknowledge(
            self.role,
            f"AwsSolutions-IAM5[Resource::{instances}]",
            "A host's ID is not known before Auto Scaling launches it; the SSM agent's heartbeat "
            "is allowed for instances of this account and region only, and reads nothing.",
        )
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "The Session Manager channel actions (ssmmessages) take no resource in IAM; they open "
            "the session's control and data channels and read no data.",
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
                    arns.parameter_arn(self, settings.token_settings_parameter, region=settings.region)
                ],
            )
        )
        # Exactly the one object, rather than grant_read's wildcards over the asset bucket.
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[bundle.bucket.arn_for_objects(bundle.s3_object_key)]
            )
        )

        # Filled in once the groups exist: a host signals its own group, found by its AZ.
        user_data = ec2.UserData.for_linux()
        self.launch_template = ec2.LaunchTemplate(
            self,
            "LaunchTemplate",
            instance_type=ec2.InstanceType(instance_type),
            machine_image=ec2.MachineImage.from_ssm_parameter(AMI_PARAMETERS[architecture]),
            role=self.role,
            security_group=self.security_group,
            user_data=user_data,
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
        previous: autoscaling.AutoScalingGroup | None = None
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
                    grace_period=HEALTH_CHECK_GRACE,
                ),
                group_metrics=[autoscaling.GroupMetrics.all()],
                # Created only once every host has answered GET /health with 200 (cfn-signal).
                signals=autoscaling.Signals.wait_for_min_capacity(
                    timeout=SIGNAL_TIMEOUT, min_success_percentage=100
                ),
                # A deploy that changes the launch template (bundle, image, settings) replaces every
                # host: the AZ's whole set at once, next to the old one (max is twice min), each new
                # host signalling its readiness before any old one is terminated, so the AZ never
                # has fewer ready hosts than its minimum. Auto Scaling's own health replacement,
                # AZ rebalancing and alarm actions are suspended meanwhile (CDK's default), as
                # CloudFormation asks.
                update_policy=autoscaling.UpdatePolicy.rolling_update(
                    max_batch_size=hosts_per_az,
                    min_instances_in_service=hosts_per_az,
                    min_success_percentage=100,
                    wait_on_resource_signals=True,
                    pause_time=SIGNAL_TIMEOUT,
                ),
            )
            # Boot needs S3 (packages, bundle), SSM (token settings), DynamoDB (readiness) and
            # CloudFormation (the signal): a host launched before its endpoints exist cannot boot.
            group.node.add_dependency(*boot_endpoints)
            # One AZ at a time: CloudFormation updates a resource only after those it depends on
            # are updated, so each AZ's rolling update starts once the previous AZ's has finished
            # (and a failed one stops the rest). Creation is serial too.
            if previous is not None:
                group.node.add_dependency(previous)
            previous = group
            group.attach_to_application_target_group(target_group)
            acknowledge(
                group,
                "AwsSolutions-AS3",
                "Operators are told of unhealthy hosts by the per-AZ load balancer alarms; "
                "scaling-event notifications would only repeat them.",
            )
            self.groups[subnet.availability_zone] = group

        self._boot(user_data, bundle, settings)

    def _boot(self, user_data: ec2.UserData, bundle: s3_assets.Asset, settings: TimelineHostSettings) -> None:
        """The hosts' user data: install, start, wait for readiness, signal the host's own group.

        Every step is bounded (BOOT_STEP_SECONDS); any failure, or no 200 from GET /health by the
        deadline, signals failure, so CloudFormation stops at once rather than at its timeout.
        The signal names the group by its logical ID, which a host finds from its AZ (one group per
        AZ). A host launched outside a deploy (a replacement) signals too; CloudFormation refuses
        that signal, which changes nothing.
        """
        stack = Stack.of(self)
        steps = BOOT_STEP_SECONDS
        groups = " ".join(
            f"{az}) group={stack.get_logical_id(g.node.default_child)} ;;" for az, g in self.groups.items()
        )
        deadline = int(BOOT_DEADLINE.to_seconds())
        user_data.add_commands(
            "set -Eeuo pipefail",
            # IMDSv2 (required by the launch template): a session token, then the host's AZ.
            "token=$(curl -sf --max-time 2 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' "
            "http://169.254.169.254/latest/api/token)",
            'zone=$(curl -sf --max-time 2 -H "X-aws-ec2-metadata-token: $token" '
            f"{IMDS}/placement/availability-zone)",
            f'case "$zone" in {groups} *) echo "no timeline host group in $zone" >&2; exit 1 ;; esac',
            f'signal() {{ timeout 60 {CFN_SIGNAL} --exit-code "$1" --stack {stack.stack_name} '
            f'--resource "$group" --region {stack.region} || true; }}',
            "trap 'signal 1' ERR",
            # Amazon Linux repositories are served from S3, reachable through the gateway endpoint.
            f"timeout {steps['packages']} dnf install -y python3.11 mdadm xfsprogs unzip aws-cfn-bootstrap",
            f"timeout {steps['bundle']} aws s3 cp {bundle.s3_object_url} /tmp/aviary-host.zip",
            "id aviary || useradd --system --no-create-home --shell /sbin/nologin aviary",
            "rm -rf /opt/aviary && mkdir -p /opt/aviary /etc/aviary",
            f"timeout {steps['install']} sh -c 'unzip -q /tmp/aviary-host.zip -d /opt/aviary && "
            "python3.11 -m venv /opt/aviary/venv && "
            "/opt/aviary/venv/bin/pip install --no-index --find-links /opt/aviary/wheels "
            "-r /opt/aviary/hosts/requirements.txt'",
            f"cat > /etc/aviary/timeline.env <<'ENV'\n{environment_file(settings)}\nENV",
            "cp /opt/aviary/hosts/systemd/*.service /etc/systemd/system/",
            "systemctl daemon-reload",
            # One timeline worker per vCPU: aviary-timeline@1.service, @2, ... share the port. The
            # disks unit bounds itself (TimeoutStartSec); the workers require it.
            "systemctl enable --now aviary-local-disks.service "
            "$(seq -f 'aviary-timeline@%g.service' $(nproc))",
            # Ready means GET /health answers 200 (hosts/timeline_service/readiness.py). The
            # deadline counts from the kernel's start, so it bounds the whole boot.
            f"until curl -sf --max-time 2 -o /dev/null {LOCAL_HEALTH_URL}; do "
            f'if [ "$(cut -d. -f1 /proc/uptime)" -ge {deadline} ]; then '
            f'echo "not ready {deadline} s after boot" >&2; signal 1; exit 1; fi; '
            "sleep 5; done",
            "trap - ERR",
            "signal 0",
        )
