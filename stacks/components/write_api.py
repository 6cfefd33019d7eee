"""The write path's public API: an HTTP API with a JWT authorizer in front of thin handlers."""

from __future__ import annotations

from dataclasses import dataclass

import jsii
from aws_cdk import Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from lambda_functions.api.routes import ROUTES
from stacks.acknowledge import acknowledge

# Steady and burst request rates for the whole stage: they bound what the handlers can ask
# of DynamoDB, so a flood is refused at the edge with 429 instead of throttling the tables.
RATE_LIMIT = 200
BURST_LIMIT = 400
# Answers whether this region can serve; Route 53 health checks call it without a token.
HEALTH_ROUTE = "GET /health"


@dataclass(frozen=True)
class CustomDomain:
    """The API's public name and the certificate (in the API's region) that covers it."""

    name: str
    certificate: acm.ICertificate


class WriteApi(Construct):
    """Every route but the health route requires a valid ID token from Aviary's user pool; handlers
    read the caller from the authorizer's claims, so a caller can only ever act as itself."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: dict[str, lambda_.IFunction],
        health: lambda_.IFunction,
        issuer: str,
        audience: str,
        log_retention_days: int,
        domain: CustomDomain | None = None,
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
        # Health checkers hold no token; the answer says only whether the region's tables answer.
        method, path = HEALTH_ROUTE.split(" ", 1)
        [health_route] = self.api.add_routes(
            path=path,
            methods=[apigw.HttpMethod(method)],
            integration=integrations.HttpLambdaIntegration("health", health),
            authorizer=apigw.HttpNoneAuthorizer(),
        )
        acknowledge(
            health_route,
            "AwsSolutions-APIG4",
            "Route 53 health checkers call GET /health and carry no token; it reads no user data and "
            "answers only whether this region's source tables respond.",
        )

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
        # The API's own endpoint: health checks call it directly, because the custom domain's
        # regional endpoint answers only requests that carry the custom name.
        self.endpoint_host = (
            f"{self.api.api_id}.execute-api.{Stack.of(self).region}.{Stack.of(self).url_suffix}"
        )

        self.domain: apigw.DomainName | None = None
        if domain is not None:
            self.domain = apigw.DomainName(
                self,
                "Domain",
                domain_name=domain.name,
                certificate=domain.certificate,
                endpoint_type=apigw.EndpointType.REGIONAL,
                security_policy=apigw.SecurityPolicy.TLS_1_2,  # the newest HTTP APIs offer
            )
            apigw.ApiMapping(self, "Mapping", api=self.api, domain_name=self.domain, stage=self.stage)


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
