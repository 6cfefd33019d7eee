"""checkov findings waived for every resource of a type, each with the reason it holds for all of them.

checkov runs over the synthesized templates (tests/unit/stacks/test_quality_gates.py). A finding
that holds for one resource only is waived beside that resource with skip_checkov; the ones here
hold for every resource of the type, CDK's own (custom-resource providers, log groups) included.
"""

from __future__ import annotations

from collections.abc import Mapping

import jsii
from aws_cdk import CfnResource, IAspect
from constructs import IConstruct

from stacks.acknowledge import skip_checkov

WAIVERS: Mapping[str, tuple[tuple[str, str], ...]] = {
    "AWS::Lambda::Function": (
        (
            "CKV_AWS_115",
            "Concurrency is bounded where it matters: the API by its stage throttling, stream consumers "
            "by their shards and batch settings; reserving it per function would take capacity from the "
            "account's pool and throttle a region that takes over another's load.",
        ),
        (
            "CKV_AWS_116",
            "No function here is invoked asynchronously by a caller that could lose the event: API "
            "handlers answer synchronously, stream and queue consumers have failure destinations on their "
            "event sources, and custom-resource providers report failures to CloudFormation.",
        ),
        (
            "CKV_AWS_117",
            "The functions call only AWS APIs (DynamoDB, S3, SSM, KMS) over TLS with IAM; a VPC would add "
            "network interfaces and endpoints without isolating anything they reach.",
        ),
        (
            "CKV_AWS_173",
            "Environment variables hold table, bucket and parameter names and numeric settings, never a "
            "secret; Lambda encrypts them at rest with its own key.",
        ),
    ),
    "AWS::Logs::LogGroup": (
        (
            "CKV_AWS_158",
            "Logs hold request metadata and errors, never tokens or secrets; CloudWatch Logs encrypts them "
            "at rest, and a customer key per log group would add a key policy and cost to each.",
        ),
    ),
    **dict.fromkeys(
        ("AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable"),
        (
            (
                "CKV_AWS_119",
                "Tables are encrypted at rest with the AWS managed key; a customer managed key would have "
                "to exist in every replica region and stay usable by each replica, for no control needed.",
            ),
        ),
    ),
}


@jsii.implements(IAspect)
class CheckovWaivers:
    """Adds the WAIVERS of each resource's type to its template metadata."""

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, CfnResource):
            for check, reason in WAIVERS.get(node.cfn_resource_type, ()):
                skip_checkov(node, check, reason)
