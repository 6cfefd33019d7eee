"""Media replication: every bucket to every other region's bucket, applied after all buckets exist."""

from __future__ import annotations

import json

from aviary import naming
from stacks.aviary_app import stack_name
from stacks.components.media_replication import DESTINATION_KEY_ACTIONS


def _sdk_call(resource: dict, event: str = "Create") -> dict:
    """An SDK call as the provider reads it: a JSON string, or an Fn::Join of one with tokens
    spliced in, each of which becomes "GetAtt:<logical ID>.<attribute>" here."""
    call = resource["Properties"][event]
    if isinstance(call, str):
        return json.loads(call)
    text = "".join(
        p if isinstance(p, str) else "GetAtt:" + ".".join(p["Fn::GetAtt"]) for p in call["Fn::Join"][1]
    )
    return json.loads(text)


def _sdk_calls(assembly, region: str, action: str) -> dict[str, dict]:
    stack = stack_name("MediaReplication", region)
    calls = {i: _sdk_call(r) for i, r in assembly.resources(stack, "Custom::AWS").items()}
    return {logical_id: call for logical_id, call in calls.items() if call["action"] == action}


def _put_replication_call(assembly, region) -> dict:
    [call] = _sdk_calls(assembly, region, "putBucketReplication").values()
    return call


def _media_key_arns(assembly, region) -> dict[str, str]:
    """The deploy-time ARN of every region's media key, as the replication stack of `region` has it."""
    arns = {}
    for logical_id, call in _sdk_calls(assembly, region, "describeKey").items():
        assert call["service"] == "KMS"
        assert call["parameters"] == {"KeyId": naming.MEDIA_KEY_ALIAS}
        assert call["outputPaths"] == ["KeyMetadata.Arn"]
        arns[call["region"]] = f"GetAtt:{logical_id}.KeyMetadata.Arn"
    return arns


def _role_statements(assembly, region) -> list[dict]:
    stack = stack_name("MediaReplication", region)
    role_id = _put_replication_call(assembly, region)["parameters"]["ReplicationConfiguration"]["Role"]
    role_id = role_id.removeprefix("GetAtt:").removesuffix(".Arn")
    return [
        statement
        for policy in assembly.resources(stack, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _token(value) -> str:
    return "GetAtt:" + ".".join(value["Fn::GetAtt"]) if isinstance(value, dict) else value


def test_each_bucket_replicates_to_every_other_regions_bucket_with_its_key(prod_assembly):
    config = prod_assembly.config
    for region in config.region_names:
        call = _put_replication_call(prod_assembly, region)
        assert call["service"] == "S3" and call["action"] == "putBucketReplication"
        assert call["parameters"]["Bucket"] == naming.media_bucket_name(config.account, region)
        role_id = (
            call["parameters"]["ReplicationConfiguration"]["Role"]
            .removeprefix("GetAtt:")
            .removesuffix(".Arn")
        )
        role = prod_assembly.template_json(stack_name("MediaReplication", region))["Resources"][role_id]
        assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
            "Service": "s3.amazonaws.com"
        }
        rules = call["parameters"]["ReplicationConfiguration"]["Rules"]
        destinations = {rule["Destination"]["Bucket"] for rule in rules}
        assert destinations == {
            f"arn:aws:s3:::{naming.media_bucket_name(config.account, other)}"
            for other in config.other_regions(region)
        }
        assert sorted(rule["Priority"] for rule in rules) == list(range(1, len(rules) + 1))
        key_arns = _media_key_arns(prod_assembly, region)
        for rule in rules:
            dest_region = rule["ID"].removeprefix("to-")
            assert rule["Status"] == "Enabled"
            assert rule["DeleteMarkerReplication"] == {"Status": "Enabled"}
            assert rule["SourceSelectionCriteria"]["SseKmsEncryptedObjects"] == {"Status": "Enabled"}
            # The destination key's ARN as KMS in that region gives it, never an alias.
            assert rule["Destination"]["EncryptionConfiguration"]["ReplicaKmsKeyID"] == key_arns[dest_region]


def test_every_regions_media_key_is_looked_up_in_its_own_region(prod_assembly):
    config = prod_assembly.config
    for region in config.region_names:
        assert set(_media_key_arns(prod_assembly, region)) == set(config.region_names)


def test_replication_role_may_use_exactly_the_media_keys_as_s3_with_bucket_keys_needs(prod_assembly):
    config = prod_assembly.config
    for region in config.region_names:
        key_arns = _media_key_arns(prod_assembly, region)
        kms_statements = [
            s for s in _role_statements(prod_assembly, region) if _as_list(s["Action"])[0].startswith("kms:")
        ]
        by_key = {_token(s["Resource"]): s for s in kms_statements}
        assert len(by_key) == len(kms_statements) == len(config.region_names)
        for key_region, key_arn in key_arns.items():
            statement = by_key[key_arn]
            expected = {"kms:Decrypt"} if key_region == region else set(DESTINATION_KEY_ACTIONS)
            assert set(_as_list(statement["Action"])) == expected, (region, key_region)
            bucket_arn = f"arn:aws:s3:::{naming.media_bucket_name(config.account, key_region)}"
            assert statement["Condition"] == {
                "StringEquals": {"kms:ViaService": f"s3.{key_region}.amazonaws.com"},
                "StringLike": {"kms:EncryptionContext:aws:s3:arn": [bucket_arn, f"{bucket_arn}/*"]},
            }


def test_destination_keys_allow_what_s3_asks_for_with_bucket_keys():
    # S3 makes the replica's bucket key under the destination key and decrypts it to check it.
    assert {"kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt"} <= set(DESTINATION_KEY_ACTIONS)


def test_replication_is_removed_with_its_stack(prod_assembly):
    for region in prod_assembly.config.region_names:
        [apply_id] = _sdk_calls(prod_assembly, region, "putBucketReplication")
        resource = prod_assembly.resources(stack_name("MediaReplication", region), "Custom::AWS")[apply_id]
        delete = json.loads(resource["Properties"]["Delete"])
        assert delete["action"] == "deleteBucketReplication"
        assert delete["parameters"] == {
            "Bucket": naming.media_bucket_name(prod_assembly.config.account, region)
        }


def test_replication_deploys_after_every_regions_data_stack(prod_assembly):
    config = prod_assembly.config
    data_stacks = {stack_name("Data", region) for region in config.region_names}
    for region in config.region_names:
        artifact = prod_assembly.stacks[stack_name("MediaReplication", region)]
        assert data_stacks <= set(artifact["dependencies"]), region


def test_replication_stack_may_only_touch_media_buckets_and_keys(prod_assembly):
    config = prod_assembly.config
    media_arns = {f"arn:aws:s3:::{naming.media_bucket_name(config.account, r)}" for r in config.region_names}
    for region in config.region_names:
        stack = stack_name("MediaReplication", region)
        policies = prod_assembly.resources(stack, "AWS::IAM::Policy").values()
        for policy in policies:
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                for resource in _as_list(statement["Resource"]):
                    assert resource != "*"
                    if isinstance(resource, str) and resource.startswith("arn:aws:s3"):
                        assert resource.removesuffix("/*") in media_arns
                    if isinstance(resource, str) and resource.startswith("arn:aws:kms"):
                        # Only the lookups name keys by wildcard, to read the media key's metadata.
                        assert statement["Action"] == "kms:DescribeKey"
                        assert statement["Condition"] == {
                            "ForAnyValue:StringEquals": {"kms:ResourceAliases": naming.MEDIA_KEY_ALIAS}
                        }


def test_local_stage_has_no_replication_stacks(local_assembly):
    # moto neither replicates S3 nor runs custom-resource Lambdas; the local runtime copies media.
    assert not [name for name in local_assembly.stacks if "MediaReplication" in name]
