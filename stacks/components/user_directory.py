"""Who Aviary's users are: one Cognito user pool, declared in the primary region, its app client,
and (in prod) its multi-Region replica."""

from __future__ import annotations

import json

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_ssm as ssm
from aws_cdk import custom_resources as cr
from constructs import Construct

from aviary import naming
from stacks.acknowledge import acknowledge
from stacks.components import arns
from stacks.components.provider_logs import sdk_call


def updated_issuer(primary_region: str, user_pool_id: str) -> str:
    """The pool's multi-Region ("updated") issuer: Cognito serves its signing keys from more than one
    region, and tokens from the primary and from the replica carry it alike."""
    return f"https://issuer-cognito-idp.{primary_region}.amazonaws.com/{user_pool_id}"


class UserDirectory(Construct):
    """A user is their Cognito `sub` (the ID every key holds); their username, lower-cased, is the
    handle they claim on their first request (aviary.handles). Usernames match case-insensitively.

    In prod the pool is replicated into `replica_region` (Cognito allows one replica per pool), which
    needs the Essentials plan, a multi-Region KMS key and the updated issuer. Every region is told
    where the pool is through an SSM parameter in its own region, so no region's deploy or token
    check reads another region (see TokenSettingsPublisher).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        region: str,
        other_regions: tuple[str, ...],
        replica_region: str | None,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_retention_days = log_retention_days
        if replica_region is not None and replica_region not in other_regions:
            raise ValueError(f"the user pool's replica region {replica_region} is not one of {other_regions}")
        self.replica_region = replica_region
        self.key: kms.Key | None = None
        if replica_region is not None:
            # Cognito replicates a pool only when it is encrypted with a multi-Region key that also
            # exists in the replica's region.
            self.key = kms.Key(
                self,
                "Key",
                description="Encrypts Aviary's user pool; replicated with the pool",
                multi_region=True,
                enable_key_rotation=True,
                removal_policy=RemovalPolicy.RETAIN,
            )
            self.key.grant(
                iam.ServicePrincipal("cognito-idp.amazonaws.com"),
                "kms:Decrypt",
                "kms:Encrypt",
                "kms:GenerateDataKey*",
                "kms:DescribeKey",
            )

        self.user_pool = cognito.UserPool(
            self,
            "UserPool",
            self_sign_up_enabled=True,
            sign_in_aliases=cognito.SignInAliases(username=True),
            sign_in_case_sensitive=False,
            password_policy=cognito.PasswordPolicy(
                min_length=12,
                require_digits=True,
                require_lowercase=True,
                require_uppercase=True,
                require_symbols=True,
                temp_password_validity=Duration.days(3),
            ),
            mfa=cognito.Mfa.OPTIONAL,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            account_recovery=cognito.AccountRecovery.NONE,
            # Multi-Region replication needs Essentials or Plus; Essentials is also what CDK and
            # Cognito give a new pool by default, so naming it changes nothing for the local stage.
            feature_plan=cognito.FeaturePlan.ESSENTIALS,
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        pool = self.user_pool.node.default_child
        if self.key is not None:
            # Both settings update the pool in place (CloudFormation: no interruption).
            pool.issuer_configuration = cognito.CfnUserPool.IssuerConfigurationProperty(type="UPDATED")
            pool.key_configuration = cognito.CfnUserPool.KeyConfigurationProperty(
                key_type="CUSTOMER_MANAGED_KEY", kms_key_arn=self.key.key_arn
            )
        acknowledge(
            self.user_pool,
            "AwsSolutions-COG2",
            "MFA is optional so that people can join a social network with a password alone; "
            "TOTP is offered to everyone who wants it.",
        )
        acknowledge(
            self.user_pool,
            "AwsSolutions-COG8",
            "Threat protection needs the Plus feature plan, a per-user cost the operator should "
            "choose; the setting is one line here when they do.",
        )
        self.client = self.user_pool.add_client(
            "ApiClient",
            auth_flows=cognito.AuthFlow(user_password=True, user_srp=True),
            generate_secret=False,  # public clients (apps, the CLI) cannot keep a secret
            id_token_validity=Duration.hours(1),
            access_token_validity=Duration.hours(1),
            prevent_user_existence_errors=True,
        )
        pool_id = self.user_pool.user_pool_id
        self.issuer = (
            updated_issuer(region, pool_id)
            if self.key is not None
            else f"https://cognito-idp.{region}.amazonaws.com/{pool_id}"
        )
        location = json.dumps(
            {
                "region": region,
                "userPoolId": pool_id,
                "clientId": self.client.user_pool_client_id,
                "issuer": self.issuer,
                **({"replicaRegion": replica_region} if replica_region else {}),
            }
        )

        # Other regions find the pool through this parameter, not a cross-region stack reference.
        self.parameter = ssm.StringParameter(
            self,
            "Location",
            parameter_name=naming.USER_POOL_PARAMETER,
            description="Where Aviary's user pool is: region, pool ID, app client ID, issuer",
            string_value=location,
        )
        self.replica: cognito.CfnUserPoolReplica | None = None
        if replica_region is None:
            return  # the local stage: its runtime writes every region's parameters itself

        stack = Stack.of(self)
        acknowledge(
            stack,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "CDK's AwsCustomResource provider function is a stack singleton whose role CDK creates; "
            "the managed policy only lets it write its own CloudWatch logs.",
        )
        # ... and a copy in every other region, so their deploys never read the primary region.
        self.location_copies = {
            other: _sdk_call(
                self,
                f"Location-{other}",
                log_retention_days=self.log_retention_days,
                service="SSM",
                action="putParameter",
                region=other,
                parameters={
                    "Name": naming.USER_POOL_PARAMETER,
                    "Value": location,
                    "Type": "String",
                    "Overwrite": True,
                },
                physical_id=f"{naming.USER_POOL_PARAMETER}@{other}",
                statement=iam.PolicyStatement(
                    actions=["ssm:PutParameter"],
                    resources=[arns.parameter_arn(self, naming.USER_POOL_PARAMETER, region=other)],
                ),
            )
            for other in other_regions
        }
        # The key's replica: kept on delete like the key, since the replica pool's data needs it.
        replica_keys = arns.any_key_arn(self, region=replica_region)
        replica_key = _sdk_call(
            self,
            "ReplicaKey",
            log_retention_days=self.log_retention_days,
            service="KMS",
            action="replicateKey",
            region=region,
            parameters={"KeyId": self.key.key_id, "ReplicaRegion": replica_region},
            physical_id=f"user-pool-key@{replica_region}",
            already_done="AlreadyExistsException",
            statement=iam.PolicyStatement(
                actions=["kms:ReplicateKey", "kms:CreateKey", "kms:PutKeyPolicy", "kms:TagResource"],
                resources=[self.key.key_arn, replica_keys],
            ),
        )
        acknowledge(
            replica_key,
            f"AwsSolutions-IAM5[Resource::{replica_keys}]",
            "ReplicateKey creates the replica key in the other region, so its ARN cannot be known "
            "before the call; the statement names only that region and this account.",
        )
        self.replica = cognito.CfnUserPoolReplica(
            self, "Replica", region_name=replica_region, user_pool_id=pool_id
        )
        self.replica.apply_removal_policy(RemovalPolicy.RETAIN)
        self.replica.node.add_dependency(replica_key)
        # A replica starts INACTIVE: it then answers no sign-in or token refresh.
        activate = _sdk_call(
            self,
            "ActivateReplica",
            log_retention_days=self.log_retention_days,
            service="CognitoIdentityServiceProvider",
            action="updateUserPoolReplica",
            region=region,
            parameters={"UserPoolId": pool_id, "RegionName": replica_region, "Status": "ACTIVE"},
            physical_id=f"user-pool-replica@{replica_region}",
            statement=iam.PolicyStatement(
                actions=["cognito-idp:UpdateUserPoolReplica"], resources=[self.user_pool.user_pool_arn]
            ),
        )
        activate.node.add_dependency(self.replica)


def _sdk_call(
    scope: Construct,
    construct_id: str,
    *,
    service: str,
    action: str,
    region: str,
    parameters: dict,
    physical_id: str,
    statement: iam.PolicyStatement,
    log_retention_days: int,
    already_done: str | None = None,
) -> cr.AwsCustomResource:
    """One SDK call at create and update and none at delete: what it made outlives the stack."""
    call = cr.AwsSdkCall(
        service=service,
        action=action,
        region=region,
        parameters=parameters,
        physical_resource_id=cr.PhysicalResourceId.of(physical_id),
        ignore_error_codes_matching=already_done,
    )
    return sdk_call(
        scope,
        construct_id,
        log_retention_days=log_retention_days,
        on_create=call,
        on_update=call,
        policy=cr.AwsCustomResourcePolicy.from_statements([statement]),
        timeout=Duration.minutes(2),
    )
