"""Replication of one region's media bucket to every other region's media bucket."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import custom_resources as cr
from constructs import Construct

from aviary import naming
from stacks.acknowledge import acknowledge
from stacks.components.provider_logs import sdk_call


def _bucket_arn(account: str, region: str) -> str:
    return f"arn:aws:s3:::{naming.media_bucket_name(account, region)}"


def _media_key_statement(actions: list[str], account: str, regions: tuple[str, ...]) -> iam.PolicyStatement:
    # A key's ID in another region is not knowable at synth, so keys are matched by alias.
    return iam.PolicyStatement(
        actions=actions,
        resources=[f"arn:aws:kms:{region}:{account}:key/*" for region in regions],
        conditions={"ForAnyValue:StringEquals": {"kms:ResourceAliases": naming.MEDIA_KEY_ALIAS}},
    )


def replication_rules(account: str, destinations: tuple[str, ...]) -> list[dict]:
    """One rule per destination region (S3 multi-destination replication, V2 rule schema)."""
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
                "Bucket": _bucket_arn(account, region),
                "EncryptionConfiguration": {"ReplicaKmsKeyID": naming.media_key_alias_arn(account, region)},
            },
        }
        for priority, region in enumerate(destinations, start=1)
    ]


class MediaReplication(Construct):
    """Puts the replication configuration on this region's (already deployed) media bucket.

    S3 refuses a rule whose destination bucket does not exist yet, and the buckets of all
    regions replicate to each other, so this cannot live on the bucket in the data stack:
    it is applied by an SDK call after every region's data stack has deployed.
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
        source_arn = _bucket_arn(account, region)

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
                resources=[f"{_bucket_arn(account, dest)}/*" for dest in destinations],
            )
        )
        self.role.add_to_policy(_media_key_statement(["kms:Decrypt"], account, (region,)))
        self.role.add_to_policy(_media_key_statement(["kms:Encrypt"], account, destinations))

        bucket_name = naming.media_bucket_name(account, region)
        put_replication = cr.AwsSdkCall(
            service="S3",
            action="putBucketReplication",
            parameters={
                "Bucket": bucket_name,
                "ReplicationConfiguration": {
                    "Role": self.role.role_arn,
                    "Rules": replication_rules(account, destinations),
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
        for bucket_region in (region, *destinations):
            acknowledge(
                self.role,
                f"AwsSolutions-IAM5[Resource::{_bucket_arn(account, bucket_region)}/*]",
                "Replication reads or writes any object key of a media bucket; the wildcard covers "
                "the objects of that one named bucket and nothing else.",
            )
            acknowledge(
                self.role,
                f"AwsSolutions-IAM5[Resource::arn:aws:kms:{bucket_region}:{account}:key/*]",
                "Another region's key ID is unknowable at synth; the statement is limited to "
                "keys carrying the media key alias by a kms:ResourceAliases condition.",
            )
