"""One public name's record in one region: a latency alias that follows a health check of the region."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_route53 as route53
from constructs import Construct

# Route 53 calls a region's health route every 10 s from each checker (10 or 30 s are the choices,
# fixed at creation) and takes it out after 3 failures in a row: about 30 s to notice a failed region.
REQUEST_INTERVAL_SECONDS = 10
FAILURE_THRESHOLD = 3


class LatencyRecord(Construct):
    """An A alias record for `record_name` in `region`'s share of latency-based routing, and the
    HTTPS health check of `health_host` + `health_path` it follows.

    Every region declares its own record (same name, its own Region and SetIdentifier) in its own
    stack: a region whose stack fails or is deleted takes only its own record with it. When the
    health check fails, Route 53 answers with the next-nearest healthy region.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        zone: route53.IHostedZone,
        record_name: str,
        region: str,
        target: route53.RecordTarget,
        health_host: str,
        health_path: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.health_check = route53.HealthCheck(
            self,
            "HealthCheck",
            type=route53.HealthCheckType.HTTPS,
            fqdn=health_host,
            port=443,
            resource_path=health_path,
            request_interval=Duration.seconds(REQUEST_INTERVAL_SECONDS),
            failure_threshold=FAILURE_THRESHOLD,
        )
        self.record = route53.ARecord(
            self,
            "Record",
            zone=zone,
            record_name=record_name,
            target=target,
            region=region,
            set_identifier=region,
            health_check=self.health_check,
            comment=f"Aviary: {record_name} served from {region} while its health check passes",
        )
