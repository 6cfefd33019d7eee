"""The app as a whole: which stacks exist per stage and region, their order, and config errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from stacks.aviary_app import stack_name
from tests.cloud_assembly import PROJECT, cli_environment, project_context


def test_stacks_per_region_and_stage(assembly):
    config = assembly.config
    kinds = ["Data", "Service"] + ([] if config.is_local else ["MediaReplication"])
    expected = {stack_name(kind, region) for kind in kinds for region in config.region_names}
    # CloudFront takes its certificate from us-east-1 only, whatever the regions are.
    global_stacks = set() if config.is_local else {stack_name("MediaDelivery", "us-east-1")}
    assert set(assembly.stacks) == expected | global_stacks
    for region in config.region_names:
        for kind in kinds:
            environment = assembly.stacks[stack_name(kind, region)]["environment"]
            assert environment == f"aws://{config.account}/{region}"


def test_service_stack_deploys_after_its_own_and_the_primary_regions_data_stacks(assembly):
    primary = assembly.config.primary_region
    for region in assembly.config.region_names:
        dependencies = assembly.stacks[stack_name("Service", region)].get("dependencies", [])
        stacks = {d for d in dependencies if d in assembly.stacks}
        assert stacks == {stack_name("Data", region), stack_name("Data", primary)}


def _references(node):
    """Every Fn::ImportValue and Fn::GetStackOutput in a template, however deeply nested."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("Fn::ImportValue", "Fn::GetStackOutput"):
                yield key, value
            yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)


def test_no_stack_references_another_region(assembly):
    """Cross-region references are fragile (aws/aws-cdk#34813): names are derived instead."""
    seen = 0
    for name, artifact in assembly.stacks.items():
        region = artifact["environment"].rsplit("/", 1)[-1]
        template = assembly.template_json(name)
        for kind, value in _references(template):
            seen += 1
            if kind == "Fn::GetStackOutput":
                assert value["Region"] == region, (name, value)
                producer = value["StackName"]
            else:
                producer = value.split(":", 1)[0]  # CDK's export names start with the stack name
            assert assembly.stacks[producer]["environment"].endswith(f"/{region}"), (name, value)
        assert "/cdk/exports/" not in json.dumps(template)  # the SSM mechanism of crossRegionReferences
    assert seen > 0  # the service stacks do reference their own region's data stack


def test_prod_tags_name_the_application_and_stage(prod_assembly):
    for name in prod_assembly.stacks:
        for logical_id, resource in prod_assembly.resources(name, "AWS::S3::Bucket").items():
            tags = {t["Key"]: t["Value"] for t in resource["Properties"]["Tags"]}
            assert tags["application"] == "aviary", logical_id
            assert tags["stage"] == "prod", logical_id


def test_local_is_untagged_because_moto_misreads_some_tags(local_assembly):
    for name in local_assembly.stacks:
        for resource_type in ("AWS::KMS::Key", "AWS::SSM::Parameter"):
            for resource in local_assembly.resources(name, resource_type).values():
                assert "Tags" not in resource["Properties"]


def _run_app(overrides: dict) -> subprocess.CompletedProcess[str]:
    # app.py directly, as the CLI runs it: the CLI passes the context through CDK_CONTEXT_JSON.
    env = cli_environment() | {"CDK_CONTEXT_JSON": json.dumps(project_context(overrides))}
    return subprocess.run(
        [sys.executable, "app.py"], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"regions": "us-east-1"}, "regions"),
        ({"regions": "us-east-1,us-east-1"}, "regions"),
        (
            {"availabilityZones": '{"us-east-1": ["us-east-1a", "us-east-1b", "us-east-1z"]}'},
            "availabilityZones",
        ),
        ({"readCapacityPerRegion": "0"}, "readCapacityPerRegion"),
        ({"hostInstanceType": "m6i.large"}, "hostInstanceType"),
        ({"domainName": "aviary.example.org"}, "domainName"),
        ({"hostedZoneId": "example.com"}, "hostedZoneId"),
    ],
    ids=[
        "one-region",
        "duplicate-regions",
        "unknown-az",
        "zero-capacity",
        "no-instance-store",
        "domain-outside-zone",
        "zone-id-malformed",
    ],
)
def test_invalid_config_fails_synth_with_one_sentence_naming_the_setting(overrides, setting):
    result = _run_app(overrides)
    assert result.returncode != 0
    message = result.stderr.strip()
    assert message.startswith("aviary: invalid configuration: Setting "), message
    assert f"'{setting}'" in message
    assert "\n" not in message and "Traceback" not in message


def test_same_region_references_are_imports_in_local_and_weak_in_prod(assembly):
    """moto resolves Fn::ImportValue but not Fn::GetStackOutput; prod keeps weak references so a
    consumer never locks the retained data stack (cdk.json's defaultCrossStackReferences)."""
    for region in assembly.config.region_names:
        template = json.dumps(assembly.template_json(stack_name("Service", region)))
        if assembly.config.is_local:
            assert "Fn::GetStackOutput" not in template
            assert "Fn::ImportValue" in template
        else:
            assert "Fn::ImportValue" not in template
            assert "Fn::GetStackOutput" in template
