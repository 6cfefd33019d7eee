"""The one way a write-path Lambda function is configured."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from aviary.settings import EnvironmentSettings
from stacks.acknowledge import acknowledge
from stacks.components.code_bundles import lambda_code

# Seconds, not minutes: a slow dependency should fail the call so the client or the event
# source retries, rather than hold a connection (the shared boto3 Config times out in 1 s + 3 s).
API_TIMEOUT = Duration.seconds(10)
EVENT_TIMEOUT = Duration.seconds(30)


def write_function(
    scope: Construct,
    construct_id: str,
    *,
    handler: str,
    service: str,
    settings: EnvironmentSettings | None,
    timeout: Duration,
    log_retention_days: int,
    description: str,
) -> lambda_.Function:
    """arm64, Python 3.14, Powertools settings, its own log group with retention; its environment
    is what `settings` writes, the one class its handler reads at cold start (aviary/*_settings.py)."""
    log_group = logs.LogGroup(scope, f"{construct_id}Logs")
    log_group.node.default_child.retention_in_days = log_retention_days
    function = lambda_.Function(
        scope,
        construct_id,
        runtime=lambda_.Runtime.PYTHON_3_14,
        architecture=lambda_.Architecture.ARM_64,
        handler=handler,
        code=lambda_code(),
        timeout=timeout,
        memory_size=512,
        log_group=log_group,
        description=description,
        environment={
            "POWERTOOLS_SERVICE_NAME": service,
            "POWERTOOLS_METRICS_NAMESPACE": "Aviary",
            **(settings.to_environment() if settings else {}),
        },
    )
    acknowledge(
        function.role,
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
        "The managed basic execution policy only lets the function write its own CloudWatch "
        "logs; every data permission is granted separately and by name.",
    )
    return function
