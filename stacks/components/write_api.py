"""The write path's public API: an HTTP API with a JWT authorizer in front of thin handlers."""

from __future__ import annotations

import jsii
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from lambda_functions.api.routes import ROUTES
from stacks.acknowledge import acknowledge

# Steady and burst request rates for the whole stage: they bound what the handlers can ask
# of DynamoDB, so a flood is refused at the edge with 429 instead of throttling the tables.
RATE_LIMIT = 200
BURST_LIMIT = 400


class WriteApi(Construct):
    """Every route requires a valid ID token from Aviary's user pool; handlers read the caller
    from the authorizer's claims, so a caller can only ever act as itself."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: dict[str, lambda_.IFunction],
        issuer: str,
        audience: str,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        authorizer = authorizers.HttpJwtAuthorizer("IdToken", issuer, jwt_audience=[audience])
        self.api = apigw.HttpApi(
            self,
            "Api",
            description="Aviary write API",
            create_default_stage=False,
            default_authorizer=authorizer,
        )
        integration = {
            group: integrations.HttpLambdaIntegration(f"{group}", fn) for group, fn in functions.items()
        }
        for route, group in ROUTES.items():
            method, path = route.split(" ", 1)
            self.api.add_routes(path=path, methods=[apigw.HttpMethod(method)], integration=integration[group])

        access_logs = logs.LogGroup(self, "AccessLogs")
        access_logs.node.default_child.retention_in_days = log_retention_days
        self.stage = apigw.HttpStage(
            self,
            "Stage",
            http_api=self.api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigw.ThrottleSettings(rate_limit=RATE_LIMIT, burst_limit=BURST_LIMIT),
            access_log_settings=_AccessLogs(access_logs),
        )
        acknowledge(
            self.api,
            "AwsSolutions-APIG1",
            "Access logging is configured on the $default stage, which this API creates itself "
            "rather than through the API's own default stage.",
        )
        self.url = self.stage.url


@jsii.implements(apigw.IAccessLogSettings)
class _AccessLogs:
    """One JSON line per request: what, how it ended, from where; the format v1 and v2 share."""

    def __init__(self, log_group: logs.ILogGroup) -> None:
        self._destination = apigw.LogGroupLogDestination(log_group)
        self._format = apigateway.AccessLogFormat.json_with_standard_fields(
            caller=False,
            http_method=True,
            ip=True,
            protocol=True,
            request_time=True,
            resource_path=True,
            response_length=True,
            status=True,
            user=False,
        )

    @property
    def destination(self) -> apigw.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigateway.AccessLogFormat:
        return self._format
