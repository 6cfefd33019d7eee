"""Puts the token settings (issuer, audience, signing keys) into this region's SSM at deploy time."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import CustomResource, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from aviary import naming
from stacks.acknowledge import acknowledge

CODE = Path(__file__).resolve().parents[2] / "lambda_functions" / "token_settings"


class TokenSettingsPublisher(Construct):
    """See lambda_functions/token_settings/publisher.py for why hosts need this copy."""

    def __init__(
        self, scope: Construct, construct_id: str, *, primary_region: str, log_retention_days: int
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)

        log_group = logs.LogGroup(self, "Logs")
        log_group.node.default_child.retention_in_days = log_retention_days
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=lambda_.Runtime.PYTHON_3_14,
            architecture=lambda_.Architecture.ARM_64,
            handler="publisher.handler",
            code=lambda_.Code.from_asset(str(CODE), exclude=["__pycache__"]),
            timeout=Duration.seconds(30),
            memory_size=256,
            log_group=log_group,
            description="Copies Aviary's token settings into this region's SSM (deploy time only)",
        )
        acknowledge(
            self.function.role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "The managed basic execution policy only lets this deploy-time function write its own "
            "CloudWatch logs; it grants no access to data.",
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
