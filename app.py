#!/usr/bin/env python3
"""Entry point for the CDK CLI: builds every region's stacks from the deployment config."""

import sys

from aws_cdk import App, Aspects, Validations
from cdk_nag import AwsSolutionsChecks

from stacks.aviary_app import build_app
from stacks.checkov_waivers import CheckovWaivers
from stacks.config import ConfigError, load_config


def main() -> None:
    app = App()
    try:
        config = load_config(app.node.try_get_context)
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


if __name__ == "__main__":
    main()
