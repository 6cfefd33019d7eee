"""Who Aviary's users are: one Cognito user pool, in the primary region, and its app client."""

from __future__ import annotations

import json

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from aviary import naming
from stacks.acknowledge import acknowledge


class UserDirectory(Construct):
    """A user is their Cognito `sub` (the ID every key holds); their username, lower-cased, is the
    handle they claim on their first request (aviary.handles). Usernames match case-insensitively.

    Tokens are verified in every region without calling this one (see TokenSettingsPublisher),
    so losing the primary region stops new sign-ins, not reads or writes with live tokens.
    """

    def __init__(self, scope: Construct, construct_id: str, *, region: str) -> None:
        super().__init__(scope, construct_id)
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
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
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
        self.issuer = f"https://cognito-idp.{region}.amazonaws.com/{self.user_pool.user_pool_id}"

        # Other regions find the pool through this parameter, not a cross-region stack reference.
        self.parameter = ssm.StringParameter(
            self,
            "Location",
            parameter_name=naming.USER_POOL_PARAMETER,
            description="Where Aviary's user pool is: region, pool ID, app client ID",
            string_value=json.dumps(
                {
                    "region": region,
                    "userPoolId": self.user_pool.user_pool_id,
                    "clientId": self.client.user_pool_client_id,
                }
            ),
        )
