"""Media replication: every bucket to every other region's bucket, applied after all buckets exist."""

from __future__ import annotations

import json

from aviary import naming
from stacks.aviary_app import stack_name


def _put_replication_call(assembly, region) -> dict:
    stack = stack_name("MediaReplication", region)
    [resource] = assembly.resources(stack, "Custom::AWS").values()
    create = resource["Properties"]["Create"]
    # The SDK call is a JSON string with the role ARN spliced in by Fn::Join; the splice
    # becomes "GetAtt:<logical ID>" here.
    text = "".join(p if isinstance(p, str) else f"GetAtt:{p['Fn::GetAtt'][0]}" for p in create["Fn::Join"][1])
    return json.loads(text)


def test_each_bucket_replicates_to_every_other_regions_bucket_with_its_key(prod_assembly):
    config = prod_assembly.config
    for region in config.region_names:
        call = _put_replication_call(prod_assembly, region)
        assert call["service"] == "S3" and call["action"] == "putBucketReplication"
        assert call["parameters"]["Bucket"] == naming.media_bucket_name(config.account, region)
        role_id = call["parameters"]["ReplicationConfiguration"]["Role"].removeprefix("GetAtt:")
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
        for rule in rules:
            dest_region = rule["ID"].removeprefix("to-")
            assert rule["Status"] == "Enabled"
            assert rule["DeleteMarkerReplication"] == {"Status": "Enabled"}
            assert rule["SourceSelectionCriteria"]["SseKmsEncryptedObjects"] == {"Status": "Enabled"}
            assert rule["Destination"]["EncryptionConfiguration"]["ReplicaKmsKeyID"] == (
                naming.media_key_alias_arn(config.account, dest_region)
            )


def test_replication_is_removed_with_its_stack(prod_assembly):
    for region in prod_assembly.config.region_names:
        [resource] = prod_assembly.resources(stack_name("MediaReplication", region), "Custom::AWS").values()
        delete = json.loads(resource["Properties"]["Delete"])
        assert delete["action"] == "deleteBucketReplication"


def test_replication_deploys_after_every_regions_data_stack(prod_assembly):
    config = prod_assembly.config
    data_stacks = {stack_name("Data", region) for region in config.region_names}
    for region in config.region_names:
        artifact = prod_assembly.stacks[stack_name("MediaReplication", region)]
        assert data_stacks <= set(artifact["dependencies"]), region


def test_replication_role_may_only_touch_media_buckets_and_keys(prod_assembly):
    config = prod_assembly.config
    media_arns = {f"arn:aws:s3:::{naming.media_bucket_name(config.account, r)}" for r in config.region_names}
    for region in config.region_names:
        stack = stack_name("MediaReplication", region)
        policies = prod_assembly.resources(stack, "AWS::IAM::Policy").values()
        for policy in policies:
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                resources = (
                    statement["Resource"]
                    if isinstance(statement["Resource"], list)
                    else [statement["Resource"]]
                )
                for resource in resources:
                    assert resource != "*"
                    if isinstance(resource, str) and resource.startswith("arn:aws:s3"):
                        assert resource.removesuffix("/*") in media_arns
                    if isinstance(resource, str) and resource.startswith("arn:aws:kms"):
                        assert statement["Condition"] == {
                            "ForAnyValue:StringEquals": {"kms:ResourceAliases": naming.MEDIA_KEY_ALIAS}
                        }


def test_local_stage_has_no_replication_stacks(local_assembly):
    # moto neither replicates S3 nor runs custom-resource Lambdas; the local runtime copies media.
    assert not [name for name in local_assembly.stacks if "MediaReplication" in name]
