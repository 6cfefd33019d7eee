"""Puts the token settings (issuer, audience, signing keys) into this region's SSM at deploy time."""

from __future__ import annotations

from aws_cdk import CustomResource, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from aviary import naming
from stacks.components.write_function import EVENT_TIMEOUT, write_function


class TokenSettingsPublisher(Construct):
    """See lambda_functions/token_settings/publisher.py for why hosts need this copy."""

    def __init__(
        self, scope: Construct, construct_id: str, *, primary_region: str, log_retention_days: int
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)

        self.function = write_function(
            self,
            "Function",
            handler="lambda_functions.token_settings.publisher.handler",
            service="token-settings",
            environment={},
            timeout=EVENT_TIMEOUT,
            log_retention_days=log_retention_days,
            description="Copies Aviary's token settings into this region's SSM (deploy time only)",
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["ssm:GetParameter"],
                resources=[_parameter_arn(primary_region, stack.account, naming.USER_POOL_PARAMETER)],
            )
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["ssm:PutParameter"],
                resources=[_parameter_arn(stack.region, stack.account, naming.TOKEN_SETTINGS_PARAMETER)],
            )
        )

        self.resource = CustomResource(
            self,
            "Settings",
            service_token=self.function.function_arn,
            resource_type="Custom::AviaryTokenSettings",
            properties={
                "PrimaryRegion": primary_region,
                "UserPoolParameter": naming.USER_POOL_PARAMETER,
                "TokenSettingsParameter": naming.TOKEN_SETTINGS_PARAMETER,
            },
        )


def _parameter_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:ssm:{region}:{account}:parameter{name}"
