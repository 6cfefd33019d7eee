"""Puts the token settings (issuer, audience, signing keys) into this region's SSM: at deploy time,
then every REFRESH_INTERVAL, so Cognito's key rotations reach the hosts."""

from __future__ import annotations

from aws_cdk import CustomResource, Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from constructs import Construct

from aviary import naming
from stacks.components.write_function import EVENT_TIMEOUT, write_function

# Cognito publishes a new signing key before it signs with it; hosts also re-read the parameter
# when a token names a key they lack, so this bounds how stale the copy can be, not how soon a
# new key is accepted once it is published here.
REFRESH_INTERVAL = Duration.hours(1)
# How long CloudFormation waits for the function's answer before failing the deploy, instead of
# its default hour: the function answers within EVENT_TIMEOUT or not at all.
DEPLOY_WAIT = Duration.minutes(2)


class TokenSettingsPublisher(Construct):
    """See lambda_functions/token_settings/publisher.py for why hosts need this copy. It reads only
    this region's SSM, so deploying one region never waits on another."""

    def __init__(self, scope: Construct, construct_id: str, *, log_retention_days: int) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)

        self.function = write_function(
            self,
            "Function",
            handler="lambda_functions.token_settings.publisher.handler",
            service="token-settings",
            settings=None,  # no tables: where the pool is, it reads from this region's SSM
            timeout=EVENT_TIMEOUT,
            log_retention_days=log_retention_days,
            description="Copies Aviary's token settings into this region's SSM (deploys and hourly)",
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["ssm:GetParameter"],
                resources=[
                    _parameter_arn(stack.region, stack.account, naming.USER_POOL_PARAMETER),
                    _parameter_arn(stack.region, stack.account, naming.TOKEN_SETTINGS_PARAMETER),
                ],
            )
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["ssm:PutParameter"],
                resources=[_parameter_arn(stack.region, stack.account, naming.TOKEN_SETTINGS_PARAMETER)],
            )
        )

        properties = {
            "Region": stack.region,  # the only region it reads or writes
            "UserPoolParameter": naming.USER_POOL_PARAMETER,
            "TokenSettingsParameter": naming.TOKEN_SETTINGS_PARAMETER,
        }
        self.resource = CustomResource(
            self,
            "Settings",
            service_token=self.function.function_arn,
            resource_type="Custom::AviaryTokenSettings",
            properties=properties,
            service_timeout=DEPLOY_WAIT,
        )
        self.schedule = events.Rule(
            self,
            "Refresh",
            description="Re-publishes this region's token settings so rotated signing keys reach hosts",
            schedule=events.Schedule.rate(REFRESH_INTERVAL),
            targets=[
                targets.LambdaFunction(
                    self.function, event=events.RuleTargetInput.from_object(properties), retry_attempts=2
                )
            ],
        )


def _parameter_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:ssm:{region}:{account}:parameter{name}"
