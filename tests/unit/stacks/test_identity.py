"""Identity: one user pool in the primary region, token settings copied into every region."""

from __future__ import annotations

import json

from aviary import naming
from stacks.aviary_app import stack_name


def test_one_retained_user_pool_in_the_primary_region_only(assembly):
    config = assembly.config
    for region in config.region_names:
        pools = assembly.resources(stack_name("Data", region), "AWS::Cognito::UserPool")
        if region != config.primary_region:
            assert pools == {}
            continue
        [pool] = pools.values()
        assert pool["DeletionPolicy"] == "Retain"
        assert pool["Properties"]["DeletionProtection"] == "ACTIVE"
        assert pool["Properties"]["Policies"]["PasswordPolicy"]["MinimumLength"] >= 12
        [client] = assembly.resources(stack_name("Data", region), "AWS::Cognito::UserPoolClient").values()
        assert client["Properties"]["GenerateSecret"] is False
        assert "ALLOW_USER_PASSWORD_AUTH" in client["Properties"]["ExplicitAuthFlows"]


def test_primary_region_publishes_where_the_user_pool_is(assembly):
    data = stack_name("Data", assembly.config.primary_region)
    [parameter] = assembly.resources(data, "AWS::SSM::Parameter").values()
    assert parameter["Properties"]["Name"] == naming.USER_POOL_PARAMETER
    value = json.dumps(parameter["Properties"]["Value"])
    resources = assembly.template_json(data)["Resources"]
    pool_id = next(lid for lid, r in resources.items() if r["Type"] == "AWS::Cognito::UserPool")
    client_id = next(lid for lid, r in resources.items() if r["Type"] == "AWS::Cognito::UserPoolClient")
    assert pool_id in value and client_id in value and assembly.config.primary_region in value


def test_every_prod_region_copies_token_settings_before_its_hosts_start(prod_assembly):
    config = prod_assembly.config
    for region in config.region_names:
        stack = stack_name("Service", region)
        [(settings_id, settings)] = prod_assembly.resources(stack, "Custom::AviaryTokenSettings").items()
        assert settings["Properties"]["PrimaryRegion"] == config.primary_region
        assert settings["Properties"]["TokenSettingsParameter"] == naming.TOKEN_SETTINGS_PARAMETER
        for group in prod_assembly.resources(stack, "AWS::AutoScaling::AutoScalingGroup").values():
            assert settings_id in group["DependsOn"]


def test_publisher_may_read_the_pool_location_and_write_only_this_regions_settings(prod_assembly):
    config = prod_assembly.config
    for region in config.region_names:
        stack = stack_name("Service", region)
        statements = [
            statement
            for policy in prod_assembly.resources(stack, "AWS::IAM::Policy").values()
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
            if str(statement["Action"]).startswith("ssm:")
        ]
        by_action = {s["Action"]: s["Resource"] for s in statements}
        account = config.account
        assert by_action["ssm:PutParameter"] == (
            f"arn:aws:ssm:{region}:{account}:parameter{naming.TOKEN_SETTINGS_PARAMETER}"
        )
        # The hosts' role reads the same parameter; the publisher reads the primary's location.
        assert f"arn:aws:ssm:{config.primary_region}:{account}:parameter{naming.USER_POOL_PARAMETER}" in (
            r
            for s in statements
            for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])
        )


def test_local_stage_leaves_token_settings_to_the_local_runtime(local_assembly):
    for region in local_assembly.config.region_names:
        assert local_assembly.resources(stack_name("Service", region), "Custom::AviaryTokenSettings") == {}
        functions = local_assembly.resources(stack_name("Service", region), "AWS::Lambda::Function").values()
        assert not [f for f in functions if "token_settings" in f["Properties"].get("Handler", "")]
