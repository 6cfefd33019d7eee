#!/usr/bin/env python3
"""Entry point for the CDK CLI: builds every region's stacks from the deployment config."""

import sys

from aws_cdk import App, Aspects, Environment, Stack, Validations
from cdk_nag import AwsSolutionsChecks

from stacks.acknowledge import acknowledge
from stacks.aviary_app import build_app
from stacks.checkov_waivers import CheckovWaivers
from stacks.config import LOOKUP_AZS_CONTEXT, ConfigError, MissingAvailabilityZones, load_config


def main() -> None:
    app = App()
    try:
        config = load_config(app.node.try_get_context)
    except MissingAvailabilityZones as missing:
        if not app.node.try_get_context(LOOKUP_AZS_CONTEXT):
            sys.exit(f"aviary: invalid configuration: {missing}")
        request_availability_zones(app, missing.account, missing.region)
        app.synth()
        return
    except ConfigError as error:
        sys.exit(f"aviary: invalid configuration: {error}")
    if config.is_local:
        # moto's CloudFormation resolves Fn::ImportValue but not Fn::GetStackOutput, which the
        # weak references cdk.json asks for (they keep prod's data stacks free to change).
        app.node.set_context("@aws-cdk/core:defaultCrossStackReferences", "strong")
    build_app(app, config)
    # checkov reads its skips from the templates; findings that hold for a whole resource type.
    Aspects.of(app).add(CheckovWaivers())
    # cdk-nag runs at every synth: an unacknowledged AwsSolutions error fails it.
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True))
    app.synth()


def request_availability_zones(app: App, account: str, region: str) -> None:
    """Reports the region's AZs as missing context: the CDK CLI looks them up with the caller's
    credentials, writes them to cdk.context.json and runs the app again (once per missing region)."""
    lookup = Stack(app, f"AvailabilityZoneLookup-{region}", env=Environment(account=account, region=region))
    acknowledge(
        lookup,
        "CloudFormation-Validate::F0001",
        "this stack only asks the CLI for AZs and is never deployed, so it has no resources",
    )
    _ = lookup.availability_zones  # reading them is what records the lookup in the assembly


if __name__ == "__main__":
    main()
