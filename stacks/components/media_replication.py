"""Replication of one region's media bucket to every other region's media bucket."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import custom_resources as cr
from constructs import Construct

from aviary import naming
from stacks.acknowledge import acknowledge
from stacks.components import arns
from stacks.components.provider_logs import sdk_call

# What S3 asks KMS for when it replicates an SSE-KMS object between buckets that use S3 Bucket Keys
# (S3 User Guide, "Replicating encrypted objects"): it decrypts the source object with the source
# key; for the replica it makes a bucket-level data key under the destination key and, before
# using that bucket key, decrypts it to check its integrity. Without the destination key's
# Decrypt and GenerateDataKey, PutBucketReplication still succeeds (it checks no keys) and every
# object then fails to replicate.
SOURCE_KEY_ACTIONS = ("kms:Decrypt",)
DESTINATION_KEY_ACTIONS = ("kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt")


def _media_key_use(
    scope: Construct, actions: tuple[str, ...], key_arn: str, account: str, region: str
) -> iam.PolicyStatement:
    """Use of one region's media key, only by S3 in that region and only for that region's bucket."""
    bucket_arn = arns.media_bucket_arn(scope, account, region)
    return iam.PolicyStatement(
        actions=list(actions),
        resources=[key_arn],
        conditions={
            "StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"},
            # With a Bucket Key the encryption context is the bucket's ARN; an object written with
            # the Bucket Key turned off for it has its own ARN.
            "StringLike": {"kms:EncryptionContext:aws:s3:arn": [bucket_arn, f"{bucket_arn}/*"]},
        },
    )


def replication_rules(scope: Construct, account: str, replica_keys: dict[str, str]) -> list[dict]:
    """One rule per destination region (S3 multi-destination replication, V2 rule schema).

    `replica_keys` maps each destination region to its media key's ARN, which encrypts the replicas.
    """
    return [
        {
            "ID": f"to-{region}",
            "Priority": priority,
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "DeleteMarkerReplication": {"Status": "Enabled"},
            "SourceSelectionCriteria": {
                "SseKmsEncryptedObjects": {"Status": "Enabled"},
                # Metadata changes made to a replica flow back: replication is bidirectional.
                "ReplicaModifications": {"Status": "Enabled"},
            },
            "Destination": {
                "Bucket": arns.media_bucket_arn(scope, account, region),
                "EncryptionConfiguration": {"ReplicaKmsKeyID": key_arn},
            },
        }
        for priority, (region, key_arn) in enumerate(replica_keys.items(), start=1)
    ]


class MediaKeyLookup(Construct):
    """The ARN of a region's media key, asked of KMS in that region at deploy time (by its alias).

    The key lives in that region's data stack, and there are no cross-region stack references,
    so its ID is not known at synth. An alias would do for the replication rule, but the AWS
    docs advise a key ARN there (an alias is resolved in the requester's account), and IAM
    authorizes key use by key ARN, never by alias: knowing the ARN lets the replication role
    name exactly the keys it uses.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, account: str, region: str, log_retention_days: int
    ) -> None:
        super().__init__(scope, construct_id)
        describe = cr.AwsSdkCall(
            service="KMS",
            action="describeKey",
            parameters={"KeyId": naming.MEDIA_KEY_ALIAS},
            region=region,
            physical_resource_id=cr.PhysicalResourceId.of(f"{naming.MEDIA_KEY_ALIAS}@{region}"),
            output_paths=["KeyMetadata.Arn"],
        )
        any_key_of_region = arns.any_key_arn(self, region=region)
        lookup = sdk_call(
            self,
            "Describe",
            log_retention_days=log_retention_days,
            on_create=describe,
            on_update=describe,
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [
                    iam.PolicyStatement(
                        actions=["kms:DescribeKey"],
                        resources=[any_key_of_region],
                        conditions={
                            "ForAnyValue:StringEquals": {"kms:ResourceAliases": naming.MEDIA_KEY_ALIAS}
                        },
                    )
                ]
            ),
        )
        self.key_arn = lookup.get_response_field("KeyMetadata.Arn")
        acknowledge(
            lookup,
            f"AwsSolutions-IAM5[Resource::{any_key_of_region}]",
            "The key's ID is what this lookup finds out, so it cannot be named; the statement only "
            "reads key metadata, of keys carrying the media key alias (kms:ResourceAliases).",
        )


class MediaReplication(Construct):
    """Puts the replication configuration on this region's (already deployed) media bucket.

    S3 refuses a rule whose destination bucket does not exist yet, and the buckets of all
    regions replicate to each other, so this cannot live on the bucket in the data stack:
    it is applied by an SDK call after every region's data stack has deployed. The media keys
    are looked up the same way, and the replication role may use exactly those keys.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        account: str,
        region: str,
        destinations: tuple[str, ...],
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        source_arn = arns.media_bucket_arn(self, account, region)
        self.key_arns = {
            key_region: MediaKeyLookup(
                self,
                f"MediaKey-{key_region}",
                account=account,
                region=key_region,
                log_retention_days=log_retention_days,
            ).key_arn
            for key_region in (region, *destinations)
        }

        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("s3.amazonaws.com"),
            description="Lets S3 replicate Aviary media to the other regions",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetReplicationConfiguration", "s3:ListBucket"], resources=[source_arn]
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "s3:GetObjectVersionForReplication",
                    "s3:GetObjectVersionAcl",
                    "s3:GetObjectVersionTagging",
                ],
                resources=[f"{source_arn}/*"],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"],
                resources=[f"{arns.media_bucket_arn(self, account, dest)}/*" for dest in destinations],
            )
        )
        self.role.add_to_policy(
            _media_key_use(self, SOURCE_KEY_ACTIONS, self.key_arns[region], account, region)
        )
        for dest in destinations:
            self.role.add_to_policy(
                _media_key_use(self, DESTINATION_KEY_ACTIONS, self.key_arns[dest], account, dest)
            )

        bucket_name = naming.media_bucket_name(account, region)
        put_replication = cr.AwsSdkCall(
            service="S3",
            action="putBucketReplication",
            parameters={
                "Bucket": bucket_name,
                "ReplicationConfiguration": {
                    "Role": self.role.role_arn,
                    "Rules": replication_rules(
                        self, account, {dest: self.key_arns[dest] for dest in destinations}
                    ),
                },
            },
            physical_resource_id=cr.PhysicalResourceId.of(f"{bucket_name}-replication"),
        )
        self.apply = sdk_call(
            self,
            "Apply",
            log_retention_days=log_retention_days,
            on_create=put_replication,
            on_update=put_replication,
            on_delete=cr.AwsSdkCall(
                service="S3", action="deleteBucketReplication", parameters={"Bucket": bucket_name}
            ),
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [
                    iam.PolicyStatement(
                        actions=["s3:PutReplicationConfiguration", "s3:GetReplicationConfiguration"],
                        resources=[source_arn],
                    ),
                    iam.PolicyStatement(actions=["iam:PassRole"], resources=[self.role.role_arn]),
                ]
            ),
        )
        # Replication starts once the rules are on: the role's policy (the keys) must be there first.
        self.apply.node.add_dependency(self.role)
        for bucket_region in (region, *destinations):
            acknowledge(
                self.role,
                f"AwsSolutions-IAM5[Resource::{arns.media_bucket_arn(self, account, bucket_region)}/*]",
                "Replication reads or writes any object key of a media bucket; the wildcard covers "
                "the objects of that one named bucket and nothing else.",
            )
