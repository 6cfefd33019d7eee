"""The blast-radius report: passes on the project's own assemblies, fails (naming the resource) on
copies broken on purpose, and computes the capacity figures the config promises."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aviary import naming
from aviary.schema import TWEETS
from stacks.aviary_app import stack_name
from stacks.config import load_config
from tests.cloud_assembly import PROJECT, CloudAssembly, project_context
from tools.blast_radius.cli import main, project_read_capacity
from tools.blast_radius.model import build_model, has_instance_store
from tools.blast_radius.scenarios import (
    DISASTER_RECOVERY,
    PRINCIPLES_PAGE,
    RELAX_CONSISTENCY,
    SINGLE_HOST,
    STATIC_STABILITY,
    Report,
    Scenario,
    evaluate,
)
from tools.local_aws.assembly import read_assembly


def _report(directory: Path, required: int) -> Report:
    return evaluate(build_model(read_assembly(directory)), required=required, required_source="test")


def _scenario(report: Report, kind: str, name: str = "") -> Scenario:
    [scenario] = [s for s in report.scenarios if s.kind == kind and name in s.name]
    return scenario


def _outcome(scenario: Scenario, region: str):
    [outcome] = [o for o in scenario.outcomes if o.region == region]
    return outcome


def _violations_naming(report: Report, stack: str, logical_id: str, principle: str) -> list[str]:
    lines = [f.line() for f in report.violations]
    return [line for line in lines if f"{stack}/{logical_id}" in line and line.startswith(f"[{principle}]")]


class AssemblyCopy:
    """The manifest and templates of a synthesized assembly, copied so a test can break them."""

    def __init__(self, source: CloudAssembly, directory: Path) -> None:
        self.directory = directory
        self.config = source.config
        directory.mkdir()
        shutil.copy(source.directory / "manifest.json", directory / "manifest.json")
        for stack in source.stacks:
            shutil.copy(source.directory / f"{stack}.template.json", directory / f"{stack}.template.json")

    @contextmanager
    def edit(self, stack: str) -> Iterator[dict[str, Any]]:
        path = self.directory / f"{stack}.template.json"
        template = json.loads(path.read_text())
        yield template
        path.write_text(json.dumps(template))

    def report(self) -> Report:
        return _report(self.directory, self.config.required_read_capacity)


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in template["Resources"].items() if r["Type"] == kind}


def _service(config, region: str | None = None) -> str:
    return stack_name("Service", region or config.primary_region)


# --- the project's own templates ------------------------------------------------------------


def test_report_passes_on_the_projects_own_templates(assembly):
    report = _report(assembly.directory, assembly.config.required_read_capacity)
    assert [f.line() for f in report.violations] == []
    assert report.exit_status == 0
    assert report.stage == assembly.config.stage.value
    assert all(s.capacity_ok and s.writes_survive for s in report.scenarios)


def test_capacity_figures_follow_the_config(assembly):
    config = assembly.config
    report = _report(assembly.directory, config.required_read_capacity)
    for region in config.regions:
        azs, per_az = len(region.availability_zones), config.hosts_per_az
        assert _outcome(_scenario(report, "steady"), region.name).hosts == azs * per_az
        assert _outcome(_scenario(report, "host"), region.name).hosts == azs * per_az - 1
        az_loss = _outcome(_scenario(report, "az"), region.name)
        assert az_loss.lost in region.availability_zones
        assert az_loss.hosts == (azs - 1) * per_az >= config.required_read_capacity
        assert az_loss.percent == az_loss.hosts * 100 // config.required_read_capacity


def test_default_config_one_az_lost_leaves_exactly_100_percent(assembly):
    config = assembly.config
    assert config.required_read_capacity == 6 and config.hosts_per_az == 3  # the defaults under test
    report = _report(assembly.directory, 6)

    def figures(kind: str, region: str) -> tuple[int, int]:
        outcome = _outcome(_scenario(report, kind), region)
        return outcome.hosts, outcome.percent

    for region in config.region_names:
        assert figures("steady", region) == (9, 150)
        assert figures("host", region) == (8, 133)
        assert figures("az", region) == (6, 100)


def test_region_loss_fails_over_and_keeps_writes(assembly):
    config = assembly.config
    report = _report(assembly.directory, config.required_read_capacity)
    for lost in config.region_names:
        scenario = _scenario(report, "region", lost)
        assert scenario.writes_survive
        assert _outcome(scenario, lost).status == "down" and _outcome(scenario, lost).percent == 0
        for other in config.other_regions(lost):
            assert _outcome(scenario, other).status == "up" and _outcome(scenario, other).sufficient
        risk = "\n".join(scenario.data_at_risk)
        assert "derived data (timelines)" in risk  # Timelines: rebuilt, not data at risk
        expected = "local emulation" if config.is_local else "none beyond replication lag"
        assert f"{naming.table_name(TWEETS)}" in risk and expected in risk


def test_prod_media_buckets_are_replicated_to_every_other_region(prod_assembly):
    config = prod_assembly.config
    model = build_model(read_assembly(prod_assembly.directory))
    media = {b.name: b for b in model.buckets if b.role == "data"}
    assert set(media) == {naming.media_bucket_name(config.account, r) for r in config.region_names}
    for region in config.region_names:
        bucket = media[naming.media_bucket_name(config.account, region)]
        assert set(bucket.replicated_to) == set(config.other_regions(region))
        assert bucket.replication.stack == stack_name("MediaReplication", region)


def test_required_capacity_defaults_to_the_project_context():
    assert project_read_capacity() == load_config(project_context().get).required_read_capacity == 6


def test_instance_store_table():
    assert has_instance_store("m6id.large") and has_instance_store("i4i.xlarge")
    assert not has_instance_store("m6i.large") and not has_instance_store("t3.micro")


# --- the CLI and its formats ------------------------------------------------------------------


def test_cli_exit_codes(assembly, tmp_path, capsys):
    directory = str(assembly.directory)
    assert main(["--cdk-out", directory]) == 0
    assert "Result: PASS (exit 0)" in capsys.readouterr().out
    # One host more than an AZ loss leaves: the same templates now fail, naming the zonal groups.
    stricter = str(assembly.config.required_read_capacity + 1)
    assert main(["--cdk-out", directory, "--required-read-capacity", stricter]) == 1
    out = capsys.readouterr().out
    assert f"VIOLATION [{STATIC_STABILITY}] {_service(assembly.config)}/TimelineHostsZone1" in out
    assert main(["--cdk-out", str(tmp_path / "missing")]) == 2
    assert "manifest.json does not exist" in capsys.readouterr().err
    assert main(["--cdk-out", directory, "--format", "yaml"]) == 2


def test_json_format_is_machine_readable(assembly, capsys):
    assert main(["--cdk-out", str(assembly.directory), "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    regions = assembly.config.region_names
    kinds = [s["kind"] for s in document["scenarios"]]
    assert kinds == [
        "steady",
        "host",
        "az",
        *["region"] * len(regions),
        *["dynamodb"] * len(regions),
        *["s3"] * len(regions),
    ]
    assert document["exit_status"] == 0 and document["violations"] == []
    assert document["required_read_capacity"]["hosts"] == assembly.config.required_read_capacity
    az = next(s for s in document["scenarios"] if s["kind"] == "az")
    assert {r["region"] for r in az["regions"]} == set(regions)
    assert all(r["percent"] >= 100 for r in az["regions"])


def test_markdown_and_text_formats_show_every_scenario(prod_assembly, capsys):
    directory = str(prod_assembly.directory)
    assert main(["--cdk-out", directory, "--format", "markdown"]) == 0
    markdown = capsys.readouterr().out
    assert main(["--cdk-out", directory, "--format", "text"]) == 0
    text = capsys.readouterr().out
    report = _report(prod_assembly.directory, prod_assembly.config.required_read_capacity)
    for scenario in report.scenarios:
        assert f"### {scenario.name}" in markdown
        assert f"== {scenario.name} ==" in text
    assert markdown.count("| Region | Lost | Hosts left | Required | Capacity | Status | Note |") == len(
        report.scenarios
    )
    assert "Violations: none" in text and "## Violations\n\nNone." in markdown


def test_violations_appear_in_every_format(prod_assembly, tmp_path, capsys):
    copy = AssemblyCopy(prod_assembly, tmp_path / "copy")
    with copy.edit(_service(copy.config)) as template:
        for group in _of_type(template, "AWS::AutoScaling::AutoScalingGroup").values():
            group["Properties"]["MinSize"] = "1"
    outputs = {}
    for fmt in ("text", "markdown", "json"):
        assert main(["--cdk-out", str(copy.directory), "--format", fmt]) == 1
        outputs[fmt] = capsys.readouterr().out
    document = json.loads(outputs["json"])
    assert document["exit_status"] == 1
    stacks = {r["stack"] for v in document["violations"] for r in v["resources"]}
    assert stacks == {_service(copy.config)}
    for line in (v["line"] for v in document["violations"]):
        assert f"VIOLATION {line}" in outputs["text"] and f"- VIOLATION {line}" in outputs["markdown"]
    assert "Result: FAIL (exit 1)" in outputs["text"]


# --- broken on purpose: each must fail and name the cause ------------------------------------


def test_ebs_data_volume_fails(assembly, tmp_path):
    copy = AssemblyCopy(assembly, tmp_path / "copy")
    stack = _service(copy.config)
    with copy.edit(stack) as template:
        [(launch_id, launch)] = _of_type(template, "AWS::EC2::LaunchTemplate").items()
        launch["Properties"]["LaunchTemplateData"]["BlockDeviceMappings"].append(
            {"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 100, "VolumeType": "gp3"}}
        )
    report = copy.report()
    [line] = _violations_naming(report, stack, launch_id, SINGLE_HOST)
    assert "/dev/sdf" in line and "Fix:" in line
    assert report.exit_status == 1


def test_all_subnets_of_a_region_in_one_az_fails(assembly, tmp_path):
    copy = AssemblyCopy(assembly, tmp_path / "copy")
    region = copy.config.regions[-1]
    stack = _service(copy.config, region.name)
    with copy.edit(stack) as template:
        for subnet in _of_type(template, "AWS::EC2::Subnet").values():
            subnet["Properties"]["AvailabilityZone"] = region.availability_zones[0]
        groups = list(_of_type(template, "AWS::AutoScaling::AutoScalingGroup"))
    report = copy.report()
    az_loss = _outcome(_scenario(report, "az"), region.name)
    assert (az_loss.lost, az_loss.hosts, az_loss.percent) == (region.availability_zones[0], 0, 0)
    for group in groups:
        lines = _violations_naming(report, stack, group, STATIC_STABILITY)
        assert any(
            f"every timeline host of {region.name} is in {region.availability_zones[0]}" in x for x in lines
        )
        assert any(f"losing {region.availability_zones[0]} leaves {region.name} 0 of" in x for x in lines)


def test_zonal_groups_too_small_to_lose_an_az_fail(assembly, tmp_path):
    copy = AssemblyCopy(assembly, tmp_path / "copy")
    config = copy.config
    stack = _service(config)
    smaller = config.hosts_per_az - 1
    with copy.edit(stack) as template:
        groups = _of_type(template, "AWS::AutoScaling::AutoScalingGroup")
        for group in groups.values():
            group["Properties"]["MinSize"] = str(smaller)
    report = copy.report()
    azs = len(config.regions[0].availability_zones)
    left = (azs - 1) * smaller
    assert (
        _outcome(_scenario(report, "az"), config.primary_region).hosts == left < config.required_read_capacity
    )
    for group in groups:
        [line] = [x for x in _violations_naming(report, stack, group, STATIC_STABILITY) if "leaves" in x]
        assert f"{left} of {config.required_read_capacity} required serving hosts" in line
        assert (
            f"MinSize >= ceil({config.required_read_capacity} / ({azs} - 1)) = {config.hosts_per_az}" in line
        )
    # The other regions were not touched and are not blamed.
    assert all(stack in str(r) for f in report.violations for r in f.resources)


def test_nat_gateway_shared_across_azs_fails(assembly, tmp_path):
    copy = AssemblyCopy(assembly, tmp_path / "copy")
    stack = _service(copy.config)
    first_az = copy.config.regions[0].availability_zones[0]
    with copy.edit(stack) as template:
        subnets = _of_type(template, "AWS::EC2::Subnet")
        [public] = [
            lid
            for lid, s in subnets.items()
            if s["Properties"]["MapPublicIpOnLaunch"] and s["Properties"]["AvailabilityZone"] == first_az
        ]
        private = {lid for lid, s in subnets.items() if not s["Properties"]["MapPublicIpOnLaunch"]}
        template["Resources"]["SharedNat"] = {
            "Type": "AWS::EC2::NatGateway",
            "Properties": {"SubnetId": {"Ref": public}, "AllocationId": "eipalloc-0123456789abcdef0"},
        }
        tables = [
            a["Properties"]["RouteTableId"]
            for a in _of_type(template, "AWS::EC2::SubnetRouteTableAssociation").values()
            if a["Properties"]["SubnetId"]["Ref"] in private
        ]
        for index, table in enumerate(tables):
            template["Resources"][f"SharedNatRoute{index}"] = {
                "Type": "AWS::EC2::Route",
                "Properties": {
                    "RouteTableId": table,
                    "DestinationCidrBlock": "0.0.0.0/0",
                    "NatGatewayId": {"Ref": "SharedNat"},
                },
            }
    report = copy.report()
    [line] = _violations_naming(report, stack, "SharedNat", STATIC_STABILITY)
    assert f"NAT gateway in {first_az} carries the egress of subnets in" in line
    # Losing the NAT's AZ takes every host of the region: their egress runs through it.
    az_loss = _outcome(_scenario(report, "az"), copy.config.primary_region)
    assert (az_loss.lost, az_loss.hosts) == (first_az, 0)


def test_global_table_without_replicas_fails(prod_assembly, tmp_path):
    copy = AssemblyCopy(prod_assembly, tmp_path / "copy")
    primary = copy.config.primary_region
    stack = stack_name("Data", primary)
    with copy.edit(stack) as template:
        [(table_id, table)] = [
            (lid, t)
            for lid, t in _of_type(template, "AWS::DynamoDB::GlobalTable").items()
            if t["Properties"]["TableName"] == naming.table_name(TWEETS)
        ]
        table["Properties"]["Replicas"] = [
            r for r in table["Properties"]["Replicas"] if r["Region"] == primary
        ]
    report = copy.report()
    lines = _violations_naming(report, stack, table_id, DISASTER_RECOVERY)
    assert any(
        f"{naming.table_name(TWEETS)} is not replicated: its only copy is in {primary}" in x for x in lines
    )
    assert any(
        f"losing {primary} stops every write: {naming.table_name(TWEETS)} has no copy" in x for x in lines
    )
    assert not _scenario(report, "region", primary).writes_survive


def test_media_bucket_without_replication_fails(prod_assembly, tmp_path):
    copy = AssemblyCopy(prod_assembly, tmp_path / "copy")
    config = copy.config
    region = config.region_names[-1]
    with copy.edit(stack_name("MediaReplication", region)) as template:
        for logical_id in _of_type(template, "Custom::AWS"):
            del template["Resources"][logical_id]
    data_stack = stack_name("Data", region)
    [bucket_id] = [
        lid
        for lid, b in _of_type(
            json.loads((copy.directory / f"{data_stack}.template.json").read_text()), "AWS::S3::Bucket"
        ).items()
        if b["Properties"].get("BucketName") == naming.media_bucket_name(config.account, region)
    ]
    report = copy.report()
    [line] = _violations_naming(report, data_stack, bucket_id, DISASTER_RECOVERY)
    assert "is not replicated to any other region" in line
    assert (
        f"{naming.media_bucket_name(config.account, region)} ({data_stack}/{bucket_id}): every object"
        in "\n".join(_scenario(report, "region", region).data_at_risk)
    )


def test_instance_type_without_instance_store_fails(assembly, tmp_path):
    copy = AssemblyCopy(assembly, tmp_path / "copy")
    stack = _service(copy.config)
    with copy.edit(stack) as template:
        [(launch_id, launch)] = _of_type(template, "AWS::EC2::LaunchTemplate").items()
        launch["Properties"]["LaunchTemplateData"]["InstanceType"] = "m6i.large"
        groups = list(_of_type(template, "AWS::AutoScaling::AutoScalingGroup"))
    report = copy.report()
    [line] = _violations_naming(report, stack, launch_id, SINGLE_HOST)
    assert "m6i.large has no NVMe instance store" in line
    assert all(f"{stack}/{group}" in line for group in groups)
    # Its hosts never start the timeline service: the region stands no serving host at all.
    assert _outcome(_scenario(report, "steady"), copy.config.primary_region).hosts == 0


def test_every_principle_the_report_names_is_a_row_of_the_architecture_pages_table():
    page = (PROJECT / PRINCIPLES_PAGE).read_text()
    rows = {line.split("|")[1].strip() for line in page.splitlines() if line.startswith("| ")}
    for principle in (SINGLE_HOST, STATIC_STABILITY, DISASTER_RECOVERY, RELAX_CONSISTENCY):
        assert principle in rows, f"{principle!r} is not a principle of {PRINCIPLES_PAGE}"


# --- routing: latency records, listeners, media ------------------------------------------------


def _record(template: dict[str, Any], name: str) -> tuple[str, dict[str, Any]]:
    [(record_id, record)] = [
        (lid, r)
        for lid, r in _of_type(template, "AWS::Route53::RecordSet").items()
        if r["Properties"]["Name"] == f"{name}."
    ]
    return record_id, record


def test_prod_routes_every_name_through_health_checked_records_and_local_says_it_emulates(assembly):
    report = _report(assembly.directory, assembly.config.required_read_capacity)
    lines = [f.line() for f in report.findings]
    assert not any("no Route 53" in line for line in lines)
    emulated = [line for line in lines if "local front door stands in for Route 53" in line]
    assert len(emulated) == (1 if assembly.config.is_local else 0)
    if not assembly.config.is_local:
        model = build_model(read_assembly(assembly.directory))
        config = assembly.config
        assert model.latency_names == (config.api_name, config.timeline_name)
        for region in config.region_names:
            for name in model.latency_names:
                [record] = model.latency_records(name, region)
                assert record.health_check and record.health_check.detection_seconds == 30
        region_lost = _scenario(report, "region", config.primary_region)
        notes = "\n".join(region_lost.notes)
        assert f"{config.api_name}: Route 53 stops answering with {config.primary_region} about 30 s" in notes
        assert f"CloudFront reads from {config.region_names[1]} instead" in notes


def test_a_latency_record_without_a_health_check_fails(prod_assembly, tmp_path):
    copy = AssemblyCopy(prod_assembly, tmp_path / "copy")
    region = copy.config.region_names[-1]
    stack = _service(copy.config, region)
    with copy.edit(stack) as template:
        record_id, record = _record(template, copy.config.api_name)
        del record["Properties"]["HealthCheckId"]
    report = copy.report()
    [line] = _violations_naming(report, stack, record_id, DISASTER_RECOVERY)
    assert f"latency record for {region} follows no health check" in line
    assert "Fix: give the record a HealthCheckId" in line
    assert report.exit_status == 1


def test_a_region_without_a_latency_record_for_a_name_fails(prod_assembly, tmp_path):
    copy = AssemblyCopy(prod_assembly, tmp_path / "copy")
    config = copy.config
    region = config.region_names[-1]
    with copy.edit(_service(config, region)) as template:
        record_id, _ = _record(template, config.timeline_name)
        del template["Resources"][record_id]
    report = copy.report()
    # The violation names the records the name still has, in the other regions.
    for other in config.other_regions(region):
        with copy.edit(_service(config, other)) as template:
            other_id, _ = _record(template, config.timeline_name)
        [line] = _violations_naming(report, _service(config, other), other_id, DISASTER_RECOVERY)
        assert f"{config.timeline_name} has latency records for" in line and f"but none for {region}" in line
        assert f"Fix: add a latency alias record for {config.timeline_name} in {region}'s own stack" in line


def test_no_latency_record_at_all_fails(prod_assembly, tmp_path):
    copy = AssemblyCopy(prod_assembly, tmp_path / "copy")
    for region in copy.config.region_names:
        with copy.edit(_service(copy.config, region)) as template:
            for record_id in _of_type(template, "AWS::Route53::RecordSet"):
                del template["Resources"][record_id]
    lines = [f.line() for f in copy.report().violations]
    assert any(
        line.startswith(f"[{DISASTER_RECOVERY}] assembly: no Route 53 latency record") for line in lines
    )


def test_a_health_check_slower_than_promised_fails(prod_assembly, tmp_path):
    copy = AssemblyCopy(prod_assembly, tmp_path / "copy")
    stack = _service(copy.config)
    with copy.edit(stack) as template:
        record_id, record = _record(template, copy.config.api_name)
        check = template["Resources"][record["Properties"]["HealthCheckId"]["Ref"]]
        check["Properties"]["HealthCheckConfig"]["RequestInterval"] = 30
    [line] = _violations_naming(copy.report(), stack, record_id, DISASTER_RECOVERY)
    assert "needs 30 s x 3 = 90 s to declare the region failed" in line


def test_a_listener_that_serves_http_without_redirecting_fails(prod_assembly, tmp_path):
    copy = AssemblyCopy(prod_assembly, tmp_path / "copy")
    stack = _service(copy.config)
    with copy.edit(stack) as template:
        [https] = _of_type(template, "AWS::ElasticLoadBalancingV2::Listener").values()
        plain = json.loads(json.dumps(https))
        plain["Properties"].update(Port=80, Protocol="HTTP")
        for key in ("Certificates", "SslPolicy"):
            del plain["Properties"][key]
        template["Resources"]["PlainHttp"] = plain
        redirect = json.loads(json.dumps(plain))
        redirect["Properties"]["Port"] = 8081
        redirect["Properties"]["DefaultActions"] = [
            {
                "Type": "redirect",
                "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"},
            }
        ]
        template["Resources"]["RedirectOnly"] = redirect
    report = copy.report()
    [line] = _violations_naming(report, stack, "PlainHttp", DISASTER_RECOVERY)
    assert "the listener on port 80 serves plain HTTP" in line and "Fix: listen with HTTPS on 443" in line
    assert _violations_naming(report, stack, "RedirectOnly", DISASTER_RECOVERY) == []


def test_media_with_a_single_origin_fails(prod_assembly, tmp_path):
    copy = AssemblyCopy(prod_assembly, tmp_path / "copy")
    stack = stack_name("MediaDelivery", "us-east-1")
    with copy.edit(stack) as template:
        [(distribution_id, distribution)] = _of_type(template, "AWS::CloudFront::Distribution").items()
        config = distribution["Properties"]["DistributionConfig"]
        config["DefaultCacheBehavior"]["TargetOriginId"] = config["Origins"][0]["Id"]
        del config["OriginGroups"]
    [line] = _violations_naming(copy.report(), stack, distribution_id, DISASTER_RECOVERY)
    bucket = naming.media_bucket_name(copy.config.account, copy.config.primary_region)
    assert f"has a single origin ({bucket} in {copy.config.primary_region})" in line
    assert "Fix: point the behaviour at an origin group" in line


def test_media_without_a_distribution_fails(prod_assembly, tmp_path):
    copy = AssemblyCopy(prod_assembly, tmp_path / "copy")
    with copy.edit(stack_name("MediaDelivery", "us-east-1")) as template:
        [distribution_id] = _of_type(template, "AWS::CloudFront::Distribution")
        del template["Resources"][distribution_id]
    lines = [f.line() for f in copy.report().violations]
    assert any("accepted media has no read path" in line for line in lines)


def test_a_region_holding_only_the_cdn_is_not_one_of_the_apps_regions(prod_assembly):
    stacks = read_assembly(prod_assembly.directory)
    media = stack_name("MediaDelivery", "us-east-1")
    moved = [dataclasses.replace(s, region="eu-central-1") if s.name == media else s for s in stacks]
    model = build_model(moved)
    assert model.region_names == prod_assembly.config.region_names
    assert [d.id.stack for d in model.distributions] == [media]


def test_prod_identity_survives_the_primary_through_its_replica(prod_assembly):
    report = _report(prod_assembly.directory, 1)
    primary = prod_assembly.config.primary_region
    replica = prod_assembly.config.other_regions(primary)[0]
    notes = " ".join(_scenario(report, "region", primary).notes)
    assert f"sign-in and token refresh go on at the replica in {replica}" in notes
    assert not [f for f in report.findings if f.violation and "user pool" in f.message]


def test_a_user_pool_without_its_replica_fails(prod_assembly, tmp_path):
    copy = AssemblyCopy(prod_assembly, tmp_path / "copy")
    stack = stack_name("Data", copy.config.primary_region)
    with copy.edit(stack) as template:
        [pool_id] = _of_type(template, "AWS::Cognito::UserPool")
        for replica_id in list(_of_type(template, "AWS::Cognito::UserPoolReplica")):
            del template["Resources"][replica_id]
    lines = _violations_naming(copy.report(), stack, pool_id, DISASTER_RECOVERY)
    assert any("the Cognito user pool is only in" in x and "user_directory.py" in x for x in lines)
