"""Puts the token settings (issuer, audience, signing keys) into this region's SSM: at deploy time,
then every REFRESH_INTERVAL, so Cognito's key rotations reach the hosts."""

from __future__ import annotations

from aws_cdk import CustomResource, Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import custom_resources as cr
from constructs import Construct

from aviary import naming
from stacks.acknowledge import acknowledge
from stacks.components import arns
from stacks.components.provider_logs import log_group_with_retention
from stacks.components.write_function import EVENT_TIMEOUT, write_function

# Cognito publishes a new signing key before it signs with it; hosts also re-read the parameter
# when a token names a key they lack, so this bounds how stale the copy can be, not how soon a
# new key is accepted once it is published here.
REFRESH_INTERVAL = Duration.hours(1)
# How long CloudFormation waits for an answer before failing the deploy, instead of its default
# hour: the provider answers once the function returns, fails or times out (EVENT_TIMEOUT).
DEPLOY_WAIT = Duration.minutes(2)


class TokenSettingsPublisher(Construct):
    """See lambda_functions/token_settings/publisher.py for why hosts need this copy. It reads only
    this region's SSM, so deploying one region never waits on another.

    At deploy time CDK's provider framework calls the function and answers CloudFormation with
    what it returns or raises; the schedule calls the function itself.
    """

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
        token_settings = arns.parameter_arn(self, naming.TOKEN_SETTINGS_PARAMETER)
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["ssm:GetParameter"],
                resources=[arns.parameter_arn(self, naming.USER_POOL_PARAMETER), token_settings],
            )
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["ssm:PutParameter"], resources=[token_settings])
        )

        self.provider = cr.Provider(
            self,
            "Provider",
            on_event_handler=self.function,
            # The framework function refers to its group, so CloudFormation makes the group first.
            log_group=log_group_with_retention(self, "ProviderLogs", retention_days=log_retention_days),
        )
        framework_role = self.provider.node.find_child("framework-onEvent").role
        acknowledge(
            framework_role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "CDK's provider framework function gets a role CDK creates; the managed policy only "
            "lets it write its own CloudWatch logs.",
        )
        acknowledge(
            framework_role,
            f"AwsSolutions-IAM5[Resource::<{stack.get_logical_id(self.function.node.default_child)}.Arn>:*]",
            "CDK grants the provider framework invoke on the publisher function and its versions "
            "(the ':*'); it may invoke that one function and nothing else.",
        )

        properties = {
            "Region": stack.region,  # the only region it reads or writes
            "UserPoolParameter": naming.USER_POOL_PARAMETER,
            "TokenSettingsParameter": naming.TOKEN_SETTINGS_PARAMETER,
        }
        # Not the ID the resource had when the function answered CloudFormation itself: CloudFormation
        # refuses to change a custom resource's ServiceToken, so the new provider needs a new resource.
        self.resource = CustomResource(
            self,
            "Published",
            service_token=self.provider.service_token,
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
