"""ARNs built by name take the partition of the stack's region: no "aws" is written into the project."""

from __future__ import annotations

import json

import pytest
from aws_cdk import App, Environment, Stack
from aws_cdk.region_info import RegionInfo

from aviary import naming
from aviary.schema import TWEETS
from stacks.aviary_app import build_app
from stacks.components import arns
from stacks.config import az_context_key, load_config
from tests.cloud_assembly import project_context

GOVCLOUD = ("us-gov-west-1", "us-gov-east-1")


def _stack(region: str) -> Stack:
    app = App(context=project_context())
    return Stack(app, "ArnProbe", env=Environment(account="123456789012", region=region))


def test_arns_name_the_partition_of_the_stacks_region():
    for region, partition in (
        ("us-east-1", "aws"),
        ("us-gov-west-1", "aws-us-gov"),
        ("cn-north-1", "aws-cn"),
    ):
        stack = _stack(region)
        assert arns.parameter_arn(stack, naming.TOKEN_SETTINGS_PARAMETER) == (
            f"arn:{partition}:ssm:{region}:123456789012:parameter{naming.TOKEN_SETTINGS_PARAMETER}"
        )
        assert arns.source_table_arn(stack, TWEETS, region=region) == (
            f"arn:{partition}:dynamodb:{region}:123456789012:table/{naming.table_name(TWEETS)}"
        )
        media = naming.media_bucket_name("123456789012", region)
        assert arns.media_bucket_arn(stack, "123456789012", region) == f"arn:{partition}:s3:::{media}"
        assert arns.any_key_arn(stack, region=region) == f"arn:{partition}:kms:{region}:123456789012:key/*"


def test_another_regions_arn_names_that_region():
    stack = _stack("us-east-1")
    assert arns.parameter_arn(stack, "/aviary/x", region="us-west-2") == (
        "arn:aws:ssm:us-west-2:123456789012:parameter/aviary/x"
    )


@pytest.fixture(scope="module")
def govcloud_templates(tmp_path_factory) -> dict[str, tuple[str, str]]:
    """prod's templates for two GovCloud regions, by stack name: (region, template text).

    Synthesized in this process without the rule sets: CDK's built-in CloudFormation validation
    knows that GovCloud lacks some resource types Aviary uses (a Cognito pool replica), which is
    not what this checks.
    """
    account = load_config(project_context().get).account
    context = project_context(
        {"regions": ",".join(GOVCLOUD)}
        | {az_context_key(account, region): [f"{region}{az}" for az in "abc"] for region in GOVCLOUD}
    )
    app = App(
        outdir=str(tmp_path_factory.mktemp("govcloud")),
        context=context,
        builtin_cloud_formation_validation=False,
    )
    build_app(app, load_config(app.node.try_get_context))
    assembly = app.synth()
    return {s.stack_name: (s.environment.region, json.dumps(s.template)) for s in assembly.stacks}


def test_no_template_in_another_partition_names_the_aws_partition(govcloud_templates):
    """Fails when anything writes "arn:aws:" itself instead of letting the stack build the ARN."""
    checked = 0
    for name, (region, template) in govcloud_templates.items():
        if RegionInfo.get(region).partition == "aws":
            continue  # the CloudFront certificate's stack lives in us-east-1 whatever the regions
        assert "arn:aws:" not in template, (name, template[template.index("arn:aws:") - 200 :][:400])
        assert "arn:aws-us-gov:" in template, name  # so the ARNs built by name are there
        checked += 1
    assert checked == 3 * len(GOVCLOUD)  # Data, Service, MediaReplication
