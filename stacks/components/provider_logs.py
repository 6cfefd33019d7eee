"""Log groups of the deploy-time custom-resource providers, made before their functions first run.

A provider function left to itself gets its log group from Lambda on its first invocation, or
from CDK as a LogGroup resource that refers to the function by name, which CloudFormation
creates only after the function and possibly after the custom resource has already invoked it
(as aws/aws-cdk#667 describes): the LogGroup then fails with AlreadyExists, or the group Lambda
made keeps its logs forever. A function that refers to its log group (LoggingConfig) cannot be
created before the group, so every provider here gets one of its own with the configured retention.
"""

from __future__ import annotations

from aws_cdk import CfnResource, Duration, Stack
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from constructs import Construct, IConstruct

# The stack-level construct ID of the log group of CDK's AwsCustomResource provider.
SDK_CALL_LOGS_ID = "SdkCallLogs"


def log_group_with_retention(scope: Construct, construct_id: str, *, retention_days: int) -> logs.LogGroup:
    log_group = logs.LogGroup(scope, construct_id)
    # Set on the L1: the L2 only takes RetentionDays members, the config holds a day count.
    log_group.node.default_child.retention_in_days = retention_days
    return log_group


def sdk_call_log_group(scope: Construct, *, retention_days: int) -> logs.LogGroup:
    """The log group of the stack's AwsCustomResource provider, one per stack as the function is."""
    stack = Stack.of(scope)
    existing = stack.node.try_find_child(SDK_CALL_LOGS_ID)
    if existing is None:
        return log_group_with_retention(stack, SDK_CALL_LOGS_ID, retention_days=retention_days)
    if existing.node.default_child.retention_in_days != retention_days:
        raise ValueError(f"{stack.stack_name}: every SDK call of a stack must keep its logs as long")
    return existing


def sdk_call(
    scope: Construct,
    construct_id: str,
    *,
    log_retention_days: int,
    on_create: cr.AwsSdkCall,
    on_update: cr.AwsSdkCall | None = None,
    on_delete: cr.AwsSdkCall | None = None,
    policy: cr.AwsCustomResourcePolicy,
    timeout: Duration | None = None,
) -> cr.AwsCustomResource:
    """An AWS SDK call made by CloudFormation at deploy time, logging to a group that exists first.

    CDK runs every AwsCustomResource of a stack in one provider function, which takes its log
    group from whichever is made first; each passes the same stack-level group.
    """
    log_group = sdk_call_log_group(scope, retention_days=log_retention_days)
    resource = cr.AwsCustomResource(
        scope,
        construct_id,
        on_create=on_create,
        on_update=on_update,
        on_delete=on_delete,
        policy=policy,
        log_group=log_group,
        install_latest_aws_sdk=False,  # no download at deploy time; the runtime's SDK has what we call
        timeout=timeout,
    )
    resource.node.add_dependency(log_group)
    return resource


def give_provider_log_group(provider_function: IConstruct, log_group: logs.ILogGroup) -> None:
    """Points a provider function CDK builds at the L1 level (no log group property) at `log_group`."""
    if not (
        isinstance(provider_function, CfnResource)
        and provider_function.cfn_resource_type == "AWS::Lambda::Function"
    ):
        raise ValueError(f"{provider_function.node.path} is not a Lambda function")
    provider_function.add_property_override("LoggingConfig.LogGroup", log_group.log_group_name)
    provider_function.node.add_dependency(log_group)
