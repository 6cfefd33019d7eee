"""The read path of each region: zonal fleets on instance-store hosts behind an ALB."""

from __future__ import annotations

import itertools
import json
import math
import re

import pytest

from stacks.aviary_app import stack_name
from stacks.components.host_fleet import (
    AMI_PARAMETERS,
    BOOT_DEADLINE,
    BOOT_STEP_SECONDS,
    LOCAL_HEALTH_URL,
    architecture_of,
)
from stacks.components.timeline_load_balancer import SERVICE_PORT
from tests.cloud_assembly import PROJECT


def _service(assembly, region):
    return stack_name("Service", region)


def _private_subnets_by_az(assembly, region):
    subnets = assembly.resources(_service(assembly, region), "AWS::EC2::Subnet")
    return {
        s["Properties"]["AvailabilityZone"]: lid
        for lid, s in subnets.items()
        if not s["Properties"].get("MapPublicIpOnLaunch")
    }


def test_one_group_per_az_each_in_exactly_that_azs_private_subnet(assembly):
    for region in assembly.config.regions:
        groups = assembly.resources(_service(assembly, region.name), "AWS::AutoScaling::AutoScalingGroup")
        subnets = _private_subnets_by_az(assembly, region.name)
        placed = sorted([ref["Ref"] for ref in g["Properties"]["VPCZoneIdentifier"]] for g in groups.values())
        assert placed == sorted([subnets[az]] for az in region.availability_zones)


def test_losing_any_one_az_leaves_the_required_capacity_without_scaling(assembly):
    config = assembly.config
    for region in config.regions:
        groups = assembly.resources(_service(assembly, region.name), "AWS::AutoScaling::AutoScalingGroup")
        minimums = [int(g["Properties"]["MinSize"]) for g in groups.values()]
        assert minimums == [
            math.ceil(config.required_read_capacity / (len(region.availability_zones) - 1))
        ] * len(region.availability_zones)
        for survivors in itertools.combinations(minimums, len(minimums) - 1):
            assert sum(survivors) >= config.required_read_capacity
        for group in groups.values():
            assert "DesiredCapacity" not in group["Properties"]  # a deploy must not reset the size
            assert group["Properties"]["HealthCheckType"] == "ELB"


def _launch_template(assembly, region):
    [template] = assembly.resources(_service(assembly, region), "AWS::EC2::LaunchTemplate").values()
    return template["Properties"]["LaunchTemplateData"]


def test_launch_template_instance_store_type_imdsv2_small_encrypted_root_only(assembly):
    for region in assembly.config.region_names:
        data = _launch_template(assembly, region)
        assert data["InstanceType"] == assembly.config.host_instance_type
        assert data["MetadataOptions"] == {"HttpPutResponseHopLimit": 1, "HttpTokens": "required"}
        assert data["Monitoring"] == {"Enabled": True}
        assert data["BlockDeviceMappings"] == [
            {
                "DeviceName": "/dev/xvda",
                "Ebs": {"DeleteOnTermination": True, "Encrypted": True, "VolumeSize": 8, "VolumeType": "gp3"},
            }
        ]
        assert "KeyName" not in data


def test_image_comes_from_the_public_ssm_parameter_at_deploy_time(assembly):
    expected = AMI_PARAMETERS[architecture_of(assembly.config.host_instance_type)]
    for region in assembly.config.region_names:
        template = assembly.template_json(_service(assembly, region))
        image_param = _launch_template(assembly, region)["ImageId"]["Ref"]
        parameter = template["Parameters"][image_param]
        assert parameter["Type"] == "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>"
        assert parameter["Default"] == expected


def test_no_ebs_data_volume_and_no_ssh_anywhere(assembly):
    for name in assembly.stacks:
        template = json.dumps(assembly.template_json(name))
        assert '"AWS::EC2::Volume"' not in template
        for group in assembly.resources(name, "AWS::EC2::SecurityGroup").values():
            for rule in group["Properties"].get("SecurityGroupIngress", []):
                assert not (rule.get("FromPort", 0) <= 22 <= rule.get("ToPort", 65535)), name
        for rule in assembly.resources(name, "AWS::EC2::SecurityGroupIngress").values():
            props = rule["Properties"]
            assert not (props.get("FromPort", 0) <= 22 <= props.get("ToPort", 65535)), name


def test_hosts_accept_only_the_load_balancer_on_the_service_port(assembly):
    for region in assembly.config.region_names:
        stack = _service(assembly, region)
        resources = assembly.template_json(stack)["Resources"]
        [alb] = assembly.resources(stack, "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
        alb_group = alb["Properties"]["SecurityGroups"][0]["Fn::GetAtt"][0]
        host_group = _launch_template(assembly, region)["SecurityGroupIds"][0]["Fn::GetAtt"][0]
        assert "SecurityGroupIngress" not in resources[host_group]["Properties"]
        ingress = [
            r["Properties"]
            for r in assembly.resources(stack, "AWS::EC2::SecurityGroupIngress").values()
            if r["Properties"]["GroupId"]["Fn::GetAtt"][0] == host_group
        ]
        assert [
            (i["SourceSecurityGroupId"]["Fn::GetAtt"][0], i["FromPort"], i["ToPort"]) for i in ingress
        ] == [(alb_group, SERVICE_PORT, SERVICE_PORT)]


def test_alb_is_public_with_cross_zone_off_and_quick_health_checks(assembly):
    for region in assembly.config.region_names:
        stack = _service(assembly, region)
        [alb] = assembly.resources(stack, "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
        assert alb["Properties"]["Scheme"] == "internet-facing"
        attributes = {a["Key"]: a["Value"] for a in alb["Properties"]["LoadBalancerAttributes"]}
        assert attributes["access_logs.s3.enabled"] == "true"
        [group] = assembly.resources(stack, "AWS::ElasticLoadBalancingV2::TargetGroup").values()
        props = group["Properties"]
        tg_attributes = {a["Key"]: a["Value"] for a in props["TargetGroupAttributes"]}
        assert tg_attributes["load_balancing.cross_zone.enabled"] == "false"
        assert int(tg_attributes["deregistration_delay.timeout_seconds"]) <= 30
        assert props["HealthCheckIntervalSeconds"] <= 10
        assert props["HealthyThresholdCount"] == 2
        assert props["UnhealthyThresholdCount"] == 2
        assert props["HealthCheckPath"] == "/health"
        assert props["Port"] == SERVICE_PORT


def test_every_az_has_unhealthy_5xx_and_p99_alarms_that_notify(assembly):
    for region in assembly.config.regions:
        stack = _service(assembly, region.name)
        alarms = [
            a
            for a in assembly.resources(stack, "AWS::CloudWatch::Alarm").values()
            if a["Properties"].get("Namespace") == "AWS/ApplicationELB"
        ]
        seen = set()
        for alarm in alarms:
            props = alarm["Properties"]
            dims = {d["Name"]: d["Value"] for d in props["Dimensions"]}
            seen.add((dims["AvailabilityZone"], props["MetricName"]))
            assert len(props["AlarmActions"]) == 1
        metrics = {"UnHealthyHostCount", "HTTPCode_Target_5XX_Count", "TargetResponseTime"}
        assert seen == {(az, m) for az in region.availability_zones for m in metrics}


def test_user_data_installs_the_bundle_offline_and_starts_the_units(assembly):
    for region in assembly.config.region_names:
        user_data = json.dumps(_launch_template(assembly, region)["UserData"])
        for step in (
            "aws s3 cp",
            "--no-index --find-links /opt/aviary/wheels",
            "systemctl enable --now aviary-local-disks.service "
            "$(seq -f 'aviary-timeline@%g.service' $(nproc))",
            "AVIARY_CELEBRITY_THRESHOLD=",
            # readiness: a host is not ready until the instance-store volume is mounted there
            "AVIARY_CACHE_MOUNT=/data",
        ):
            assert step in user_data


def test_host_bundle_carries_code_units_and_wheels_for_the_hosts_architecture(assembly):
    bundles = [
        p
        for p in assembly.directory.glob("asset.*")
        if p.is_dir() and (p / "hosts" / "systemd" / "aviary-timeline@.service").exists()
    ]
    assert len(bundles) == 1  # one bundle, shared by every region's hosts
    [bundle] = bundles
    wheels = sorted(w.name for w in (bundle / "wheels").glob("*.whl"))
    arch = "aarch64" if architecture_of(assembly.config.host_instance_type) == "arm64" else "x86_64"
    assert any(w.startswith("aiohttp-") and arch in w for w in wheels)
    assert (bundle / "aviary" / "keys.py").exists()
    assert (bundle / "hosts" / "requirements.txt").exists()
    assert not list(bundle.rglob("__pycache__"))


@pytest.mark.parametrize(
    ("instance_type", "architecture"),
    [
        ("m6id.large", "x86_64"),
        ("c6id.xlarge", "x86_64"),
        ("m6gd.large", "arm64"),
        ("im4gn.large", "arm64"),
        ("i4i.large", "x86_64"),
        ("i4g.large", "arm64"),
        ("x2idn.16xlarge", "x86_64"),
    ],
)
def test_architecture_follows_the_instance_family(instance_type, architecture):
    assert architecture_of(instance_type) == architecture


# -- deploys and boot: rolling updates, readiness signals, the host role ------------------------


def _groups(assembly, region):
    return assembly.resources(_service(assembly, region), "AWS::AutoScaling::AutoScalingGroup")


def _seconds(iso_duration: str) -> int:
    """PT#H#M#S as CloudFormation writes it."""
    match = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?", iso_duration)
    assert match, iso_duration
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def _user_data(assembly, region) -> str:
    """The user data script with every intrinsic (table names from the data stack) elided."""
    parts = _launch_template(assembly, region)["UserData"]["Fn::Base64"]["Fn::Join"][1]
    return "".join(p if isinstance(p, str) else "<intrinsic>" for p in parts)


def test_a_deploy_replaces_every_host_next_to_the_old_ones_after_each_signals_ready(assembly):
    for region in assembly.config.region_names:
        for lid, group in _groups(assembly, region).items():
            size, most = int(group["Properties"]["MinSize"]), int(group["Properties"]["MaxSize"])
            assert "AutoScalingReplacingUpdate" not in group.get("UpdatePolicy", {}), lid
            rolling = group["UpdatePolicy"]["AutoScalingRollingUpdate"]
            # 100 % of the AZ's hosts stay in service: the new batch is launched beside them,
            # within MaxSize, before any old host is terminated.
            assert int(rolling["MinInstancesInService"]) == size, lid
            batch = int(rolling["MaxBatchSize"])
            assert 1 <= batch <= most - size, lid
            assert rolling["WaitOnResourceSignals"] is True, lid
            assert int(rolling["MinSuccessfulInstancesPercent"]) == 100, lid
            assert rolling["PauseTime"] == group["CreationPolicy"]["ResourceSignal"]["Timeout"], lid
            # Auto Scaling must not replace or rebalance hosts behind CloudFormation's back, and
            # must still launch, terminate and register them.
            suspended = set(rolling["SuspendProcesses"])
            assert {"HealthCheck", "ReplaceUnhealthy", "AZRebalance"} <= suspended, lid
            assert not suspended & {"Launch", "Terminate", "AddToLoadBalancer"}, lid


def test_the_azs_groups_are_updated_one_after_another_never_all_at_once(assembly):
    """CloudFormation updates a resource after the resources it depends on: a chain of DependsOn
    through every group of a region is an order in which exactly one AZ rolls at a time."""
    for region in assembly.config.regions:
        groups = _groups(assembly, region.name)
        after = {lid: [d for d in group.get("DependsOn", []) if d in groups] for lid, group in groups.items()}
        assert all(len(previous) <= 1 for previous in after.values()), after
        [first] = [lid for lid, previous in after.items() if not previous]
        following = {previous[0]: lid for lid, previous in after.items() if previous}
        order = [first]
        while order[-1] in following:
            order.append(following[order[-1]])
        assert sorted(order) == sorted(groups)  # one chain through every group, no cycle
        assert len(order) == len(region.availability_zones)


def test_a_group_is_created_only_once_every_host_signals_ready_within_the_boot_bound(assembly):
    for region in assembly.config.region_names:
        for lid, group in _groups(assembly, region).items():
            policy = group["CreationPolicy"]
            assert policy["ResourceSignal"]["Count"] == int(group["Properties"]["MinSize"]), lid
            assert policy["AutoScalingCreationPolicy"]["MinSuccessfulInstancesPercent"] == 100, lid
            timeout = _seconds(policy["ResourceSignal"]["Timeout"])
            # CloudFormation waits longer than the host's own deadline (which counts from its
            # kernel's start), so a slow host fails by its own signal, not by the timeout...
            assert timeout > BOOT_DEADLINE.to_seconds(), lid
            # ...and Auto Scaling does not judge a host before it could have signalled: no
            # replacement loop of hosts that are still booting.
            assert int(group["Properties"]["HealthCheckGracePeriod"]) >= timeout, lid
            assert timeout <= 3600, lid  # CloudFormation's PauseTime limit (PT1H)


def test_the_boot_bound_is_the_sum_of_bounded_steps_each_enforced_on_the_host(assembly):
    assert BOOT_DEADLINE.to_seconds() == sum(BOOT_STEP_SECONDS.values())
    for region in assembly.config.region_names:
        script = _user_data(assembly, region)
        assert f"timeout {BOOT_STEP_SECONDS['packages']} dnf install -y" in script
        assert f"timeout {BOOT_STEP_SECONDS['bundle']} aws s3 cp s3://" in script
        assert f"timeout {BOOT_STEP_SECONDS['install']} sh -c 'unzip" in script
        assert f"-ge {int(BOOT_DEADLINE.to_seconds())} ]" in script  # the readiness wait's deadline
    unit = (PROJECT / "hosts" / "systemd" / "aviary-local-disks.service").read_text()
    assert f"TimeoutStartSec={BOOT_STEP_SECONDS['disks']}" in unit.splitlines()


def test_each_host_signals_its_own_group_only_after_its_health_answers_200(assembly):
    for region in assembly.config.region_names:
        script = _user_data(assembly, region)
        resources = assembly.template_json(_service(assembly, region))["Resources"]
        # The host finds its group from its AZ: each AZ names the group placed in that AZ's subnet.
        mapping = dict(re.findall(r"(\S+)\) group=(\w+) ;;", script))
        assert mapping == {
            resources[group["Properties"]["VPCZoneIdentifier"][0]["Ref"]]["Properties"][
                "AvailabilityZone"
            ]: lid
            for lid, group in _groups(assembly, region).items()
        }
        assert "aws-cfn-bootstrap" in script
        assert '--resource "$group"' in script and f"--stack {_service(assembly, region)}" in script
        # Failure is signalled from the first step on; success only after the health loop.
        lines = script.splitlines()
        trap = lines.index("trap 'signal 1' ERR")
        assert trap < next(i for i, line in enumerate(lines) if "dnf install" in line)
        wait = next(i for i, line in enumerate(lines) if line.startswith("until "))
        assert f"curl -sf --max-time 2 -o /dev/null {LOCAL_HEALTH_URL}; do" in lines[wait]
        assert "signal 1; exit 1" in lines[wait]
        assert lines[wait + 1 :] == ["trap - ERR", "signal 0"]
        assert script.count("signal 0") == 1


def _service_of(service_name) -> str:
    """com.amazonaws.<region>.<service>, written plainly or as a Fn::Join with the region."""
    if isinstance(service_name, dict):
        service_name = "".join(p if isinstance(p, str) else "" for p in service_name["Fn::Join"][1])
    return service_name.rsplit(".", 1)[-1]


def test_groups_wait_for_every_endpoint_their_hosts_boot_through(assembly):
    for region in assembly.config.region_names:
        stack = _service(assembly, region)
        endpoints = {
            _service_of(e["Properties"]["ServiceName"]): lid
            for lid, e in assembly.resources(stack, "AWS::EC2::VPCEndpoint").items()
        }
        for service in ("s3", "dynamodb", "ssm", "cloudformation"):
            endpoint = endpoints[service]
            for lid, group in _groups(assembly, region).items():
                assert endpoint in group["DependsOn"], (lid, service)


def _host_role(assembly, stack):
    resources = assembly.template_json(stack)["Resources"]
    [template] = assembly.resources(stack, "AWS::EC2::LaunchTemplate").values()
    profile = template["Properties"]["LaunchTemplateData"]["IamInstanceProfile"]["Arn"]["Fn::GetAtt"][0]
    [role] = resources[profile]["Properties"]["Roles"]
    return role["Ref"]


def _statements(assembly, stack, role):
    for policy in assembly.resources(stack, "AWS::IAM::Policy").values():
        if {"Ref": role} in policy["Properties"]["Roles"]:
            yield from policy["Properties"]["PolicyDocument"]["Statement"]


def _listed(value):
    return value if isinstance(value, list) else [value]


def test_the_only_parameter_a_host_can_read_is_its_token_settings(assembly):
    for region in assembly.config.region_names:
        stack = _service(assembly, region)
        role = _host_role(assembly, stack)
        resources = assembly.template_json(stack)["Resources"]
        # No managed policy at all: AmazonSSMManagedInstanceCore allows ssm:GetParameter(s) on "*".
        assert not resources[role]["Properties"].get("ManagedPolicyArns"), region
        parameter_reads = []
        session_manager = {}
        for statement in _statements(assembly, stack, role):
            assert statement["Effect"] == "Allow"
            actions = _listed(statement["Action"])
            assert not [a for a in actions if a.endswith("*")], actions
            reads = [a for a in actions if a.startswith("ssm:Get")]
            if reads:
                parameter_reads.append((reads, statement["Resource"]))
            if any(a.startswith(("ssm:Update", "ssmmessages:")) for a in actions):
                session_manager.update(dict.fromkeys(actions, statement["Resource"]))
        assert parameter_reads == [
            (
                ["ssm:GetParameter"],
                f"arn:aws:ssm:{region}:{assembly.config.account}:parameter/aviary/identity/token-settings",
            )
        ]
        # What Session Manager needs of the host: the agent's heartbeat, on this region's
        # instances, and the session channels, which IAM knows no resource for.
        assert session_manager == {
            "ssm:UpdateInstanceInformation": f"arn:aws:ec2:{region}:{assembly.config.account}:instance/*",
            "ssmmessages:CreateControlChannel": "*",
            "ssmmessages:CreateDataChannel": "*",
            "ssmmessages:OpenControlChannel": "*",
            "ssmmessages:OpenDataChannel": "*",
        }
        # Nothing else is allowed on every resource.
        assert {
            a
            for s in _statements(assembly, stack, role)
            if s["Resource"] == "*"
            for a in _listed(s["Action"])
        } == {a for a in session_manager if a.startswith("ssmmessages:")}
