"""Identity: one user pool declared in the primary region, replicated in prod; each region verifies
tokens with settings copied into its own SSM, from its own copy of where the pool is."""

from __future__ import annotations

import json

from aviary import naming
from stacks.aviary_app import stack_name
from stacks.components.token_settings import REFRESH_INTERVAL

# The pool's logical ID: a refactor that changes it would replace the pool and lose every account.
POOL_ID = "UsersUserPool7E610616"


def _pool(assembly):
    return assembly.resources(stack_name("Data", assembly.config.primary_region), "AWS::Cognito::UserPool")


def test_one_retained_user_pool_in_the_primary_region_only(assembly):
    config = assembly.config
    for region in config.region_names:
        pools = assembly.resources(stack_name("Data", region), "AWS::Cognito::UserPool")
        if region != config.primary_region:
            assert pools == {}
            continue
        [(logical_id, pool)] = pools.items()
        assert logical_id == POOL_ID
        assert pool["DeletionPolicy"] == "Retain"
        assert pool["Properties"]["DeletionProtection"] == "ACTIVE"
        assert pool["Properties"]["Policies"]["PasswordPolicy"]["MinimumLength"] >= 12
        assert pool["Properties"]["UserPoolTier"] == "ESSENTIALS"  # replication needs Essentials or Plus
        [client] = assembly.resources(stack_name("Data", region), "AWS::Cognito::UserPoolClient").values()
        assert client["Properties"]["GenerateSecret"] is False
        assert "ALLOW_USER_PASSWORD_AUTH" in client["Properties"]["ExplicitAuthFlows"]


def test_prod_pool_has_the_multi_region_issuer_and_a_multi_region_key(prod_assembly):
    data = stack_name("Data", prod_assembly.config.primary_region)
    [pool] = _pool(prod_assembly).values()
    assert pool["Properties"]["IssuerConfiguration"] == {"Type": "UPDATED"}
    key_config = pool["Properties"]["KeyConfiguration"]
    assert key_config["KeyType"] == "CUSTOMER_MANAGED_KEY"
    key_id = key_config["KmsKeyArn"]["Fn::GetAtt"][0]
    key = prod_assembly.resources(data, "AWS::KMS::Key")[key_id]
    assert key["Properties"]["MultiRegion"] is True
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == "Retain"


def test_prod_replicates_the_pool_into_one_other_region_and_activates_it(prod_assembly):
    config = prod_assembly.config
    data = stack_name("Data", config.primary_region)
    resources = prod_assembly.template_json(data)["Resources"]
    # Cognito allows one replica per pool: the first region after the primary holds it.
    replica_region = config.other_regions(config.primary_region)[0]
    [(replica_id, replica)] = prod_assembly.resources(data, "AWS::Cognito::UserPoolReplica").items()
    assert replica["Properties"]["RegionName"] == replica_region
    assert replica["Properties"]["UserPoolId"] == {"Ref": POOL_ID}
    assert replica["DeletionPolicy"] == "Retain"
    calls = {
        lid: json.dumps(r["Properties"].get("Create"))
        for lid, r in resources.items()
        if r["Type"] == "Custom::AWS"
    }
    [(key_call_id, key_call)] = [(lid, c) for lid, c in calls.items() if "replicateKey" in c]
    assert f'\\"ReplicaRegion\\":\\"{replica_region}\\"' in key_call
    assert key_call_id in replica["DependsOn"]  # the replica pool is encrypted with the replica key
    [(activate_id, activate)] = [(lid, c) for lid, c in calls.items() if "updateUserPoolReplica" in c]
    assert '\\"Status\\":\\"ACTIVE\\"' in activate and replica_region in activate
    assert replica_id in resources[activate_id]["DependsOn"]
    for region in config.region_names:
        if region != config.primary_region:
            assert prod_assembly.resources(stack_name("Data", region), "AWS::Cognito::UserPool") == {}


def test_prod_copies_where_the_pool_is_into_every_other_region(prod_assembly):
    config = prod_assembly.config
    data = stack_name("Data", config.primary_region)
    copies = [
        json.dumps(r["Properties"]["Create"])
        for r in prod_assembly.resources(data, "Custom::AWS").values()
        if "putParameter" in json.dumps(r["Properties"]["Create"])
    ]
    regions = sorted(
        region for region in config.region_names for c in copies if f'\\"region\\":\\"{region}\\"' in c
    )
    assert regions == sorted(config.other_regions(config.primary_region))
    assert all(naming.USER_POOL_PARAMETER in c and "issuer-cognito-idp" in c for c in copies)


def test_local_stage_has_one_pool_and_no_replica(local_assembly):
    data = stack_name("Data", local_assembly.config.primary_region)
    assert local_assembly.resources(data, "AWS::Cognito::UserPoolReplica") == {}
    assert local_assembly.resources(data, "Custom::AWS") == {}
    [pool] = _pool(local_assembly).values()
    assert "IssuerConfiguration" not in pool["Properties"]


def test_primary_region_publishes_where_the_user_pool_is(assembly):
    data = stack_name("Data", assembly.config.primary_region)
    [parameter] = assembly.resources(data, "AWS::SSM::Parameter").values()
    assert parameter["Properties"]["Name"] == naming.USER_POOL_PARAMETER
    value = json.dumps(parameter["Properties"]["Value"])
    resources = assembly.template_json(data)["Resources"]
    client_id = next(lid for lid, r in resources.items() if r["Type"] == "AWS::Cognito::UserPoolClient")
    assert POOL_ID in value and client_id in value and assembly.config.primary_region in value


def test_every_prod_region_copies_token_settings_from_its_own_region_before_its_hosts_start(prod_assembly):
    config = prod_assembly.config
    for region in config.region_names:
        stack = stack_name("Service", region)
        [(settings_id, settings)] = prod_assembly.resources(stack, "Custom::AviaryTokenSettings").items()
        assert settings["Properties"]["Region"] == region
        assert "PrimaryRegion" not in settings["Properties"]
        assert settings["Properties"]["TokenSettingsParameter"] == naming.TOKEN_SETTINGS_PARAMETER
        # CloudFormation gives up on a silent function within minutes, not its default hour.
        assert int(settings["Properties"]["ServiceTimeout"]) <= 300
        for group in prod_assembly.resources(stack, "AWS::AutoScaling::AutoScalingGroup").values():
            assert settings_id in group["DependsOn"]


def _publisher(resources, settings):
    """The function a token-settings resource runs: the one CDK's provider framework invokes."""
    [framework_id, attribute] = settings["Properties"]["ServiceToken"]["Fn::GetAtt"]
    framework = resources[framework_id]["Properties"]
    assert attribute == "Arn" and framework["Handler"] == "framework.onEvent"
    [publisher, _] = framework["Environment"]["Variables"]["USER_ON_EVENT_FUNCTION_ARN"]["Fn::GetAtt"]
    return publisher


def test_token_settings_are_answered_by_cdks_provider_framework_calling_the_publisher(prod_assembly):
    """The framework speaks CloudFormation's response protocol; the publisher only returns or raises."""
    for region in prod_assembly.config.region_names:
        stack = stack_name("Service", region)
        resources = prod_assembly.template_json(stack)["Resources"]
        [settings] = prod_assembly.resources(stack, "Custom::AviaryTokenSettings").values()
        publisher = _publisher(resources, settings)
        assert resources[publisher]["Properties"]["Handler"] == (
            "lambda_functions.token_settings.publisher.handler"
        )
        [framework_id, _] = settings["Properties"]["ServiceToken"]["Fn::GetAtt"]
        [role_id, _] = resources[framework_id]["Properties"]["Role"]["Fn::GetAtt"]
        framework_policies = [
            r["Properties"]["PolicyDocument"]["Statement"]
            for r in resources.values()
            if r["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in r["Properties"]["Roles"]
        ]
        # The framework may call the publisher (and its versions) and nothing else.
        assert framework_policies and all(
            publisher in json.dumps(statement["Resource"])
            for statements in framework_policies
            for statement in statements
        )


def test_each_region_refreshes_its_token_settings_on_a_schedule(prod_assembly):
    for region in prod_assembly.config.region_names:
        stack = stack_name("Service", region)
        resources = prod_assembly.template_json(stack)["Resources"]
        [settings] = prod_assembly.resources(stack, "Custom::AviaryTokenSettings").values()
        publisher = _publisher(resources, settings)
        rules = [
            r["Properties"]
            for r in prod_assembly.resources(stack, "AWS::Events::Rule").values()
            if any(t["Arn"] == {"Fn::GetAtt": [publisher, "Arn"]} for t in r["Properties"].get("Targets", []))
        ]
        [rule] = rules
        assert rule["ScheduleExpression"] == f"rate({REFRESH_INTERVAL.to_hours()} hour)"
        [target] = rule["Targets"]
        scheduled = json.loads(target["Input"])
        assert scheduled == {
            k: v for k, v in settings["Properties"].items() if k not in ("ServiceToken", "ServiceTimeout")
        }
        assert any(
            r["Type"] == "AWS::Lambda::Permission" and r["Properties"]["Principal"] == "events.amazonaws.com"
            for r in resources.values()
        )


def test_publisher_reads_and_writes_only_its_own_region(prod_assembly):
    config = prod_assembly.config
    for region in config.region_names:
        stack = stack_name("Service", region)
        statements = [
            statement
            for policy in prod_assembly.resources(stack, "AWS::IAM::Policy").values()
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
            if str(statement["Action"]).startswith("ssm:")
        ]
        account = config.account
        by_action = {s["Action"]: s["Resource"] for s in statements}
        assert by_action["ssm:PutParameter"] == (
            f"arn:aws:ssm:{region}:{account}:parameter{naming.TOKEN_SETTINGS_PARAMETER}"
        )
        resources = [
            r
            for s in statements
            for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])
        ]
        # SSM grants of this stack (the publisher's, and the hosts' agent heartbeat on instances) name
        # this region only.
        assert resources and all(r.split(":")[3] == region for r in resources), resources


def test_each_regions_authorizer_trusts_the_issuer_its_own_publisher_read(prod_assembly):
    for region in prod_assembly.config.region_names:
        stack = stack_name("Service", region)
        [(settings_id, settings)] = prod_assembly.resources(stack, "Custom::AviaryTokenSettings").items()
        assert settings["Properties"]["Region"] == region
        [authorizer] = prod_assembly.resources(stack, "AWS::ApiGatewayV2::Authorizer").values()
        assert authorizer["Properties"]["JwtConfiguration"]["Issuer"] == {
            "Fn::GetAtt": [settings_id, "Issuer"]
        }


def test_local_stage_leaves_token_settings_to_the_local_runtime(local_assembly):
    for region in local_assembly.config.region_names:
        assert local_assembly.resources(stack_name("Service", region), "Custom::AviaryTokenSettings") == {}
        functions = local_assembly.resources(stack_name("Service", region), "AWS::Lambda::Function").values()
        assert not [f for f in functions if "token_settings" in f["Properties"].get("Handler", "")]
