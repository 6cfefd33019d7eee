"""The global read path of media: deployed to us-east-1, where CloudFront takes its certificates from."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_route53 as route53
from constructs import Construct

from stacks.components.media_distribution import MediaDistribution
from stacks.config import DeploymentConfig

# CloudFront is global, but reads its certificates from this region only.
CLOUDFRONT_REGION = "us-east-1"


class MediaDeliveryStack(Stack):
    """media.<domain>: CloudFront over the primary region's media bucket, failing over to the next's.

    It holds no data and references nothing in another stack: buckets are found by their derived
    names, so losing any region's stacks leaves this one as it is.
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: DeploymentConfig, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        zone = route53.HostedZone.from_hosted_zone_attributes(
            self, "Zone", hosted_zone_id=config.hosted_zone_id, zone_name=config.hosted_zone_name
        )
        primary, fallback = config.region_names[:2]
        self.media = MediaDistribution(
            self,
            "Media",
            account=config.account,
            origin_regions=(primary, fallback),
            domain_name=config.media_name,
            zone=zone,
            log_retention_days=config.log_retention_days,
        )
