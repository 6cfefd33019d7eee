"""Per-region stateless stack: network, read fleet and alarms; the write path (one construct) joins it; in
prod also the region's public edge (certificate, custom domain, health-checked latency records)."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as targets
from constructs import Construct

from aviary import naming
from aviary.host_settings import TimelineHostSettings
from aviary.schema import SOCIAL_GRAPH, TWEETS, TableSchema
from stacks.components import arns
from stacks.components.code_bundles import HostBundle
from stacks.components.fleet_alarms import FleetAlarms
from stacks.components.host_fleet import CACHE_MOUNT, HostFleet, architecture_of
from stacks.components.latency_record import LatencyRecord
from stacks.components.network import Network
from stacks.components.operator_alerts import OperatorAlerts
from stacks.components.timeline_load_balancer import SERVICE_PORT, TimelineLoadBalancer
from stacks.components.token_settings import TokenSettingsPublisher
from stacks.components.write_api import HEALTH_ROUTE
from stacks.components.write_path import WRITE_PATH_ID, WritePath
from stacks.components.zonal_autoshift import ZonalAutoshift
from stacks.config import DeploymentConfig, RegionConfig
from stacks.data_stack import RegionalDataStack


class RegionalServiceStack(Stack):
    """Everything in here can be destroyed and redeployed without losing data."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        region: RegionConfig,
        cidr: str,
        data: RegionalDataStack,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.network = Network(
            self,
            "Network",
            cidr=cidr,
            availability_zones=region.availability_zones,
            log_retention_days=config.log_retention_days,
            restrict_default_security_group=not config.is_local,
        )
        vpc = self.network.vpc
        self.alerts = OperatorAlerts(self, "Alerts", email=config.alert_email)

        # moto can neither validate a certificate nor run Route 53 health checks: in `local` the
        # local front door stands in for the public edge (plain HTTP, health checks, failover).
        self.zone: route53.IHostedZone | None = None
        self.certificate: acm.ICertificate | None = None
        if not config.is_local:
            self.zone = route53.HostedZone.from_hosted_zone_attributes(
                self, "Zone", hosted_zone_id=config.hosted_zone_id, zone_name=config.hosted_zone_name
            )
            # One certificate for the region's two names; ACM validates it through a record that
            # CloudFormation writes into the zone, and renews it as long as the record stays.
            self.certificate = acm.Certificate(
                self,
                "Certificate",
                domain_name=config.api_name,
                subject_alternative_names=[config.timeline_name],
                validation=acm.CertificateValidation.from_dns(self.zone),
            )

        self.load_balancer = TimelineLoadBalancer(
            self,
            "TimelineLoadBalancer",
            vpc=vpc,
            log_retention_days=config.log_retention_days,
            certificate=self.certificate,
            hosts_per_az=config.hosts_per_az,
            hosts_needed_per_az=config.hosts_needed_per_az,
        )
        bundle = HostBundle(self, "HostBundle", architecture=architecture_of(config.host_instance_type))

        # Source tables are found by their derived names: in prod the replica in this region
        # belongs to the primary region's stack.
        def source_table_arn(schema: TableSchema) -> str:
            return arns.source_table_arn(self, schema, region=region.name)

        self.fleet = HostFleet(
            self,
            "TimelineHosts",
            vpc=vpc,
            instance_type=config.host_instance_type,
            hosts_per_az=config.hosts_per_az,
            bundle=bundle.asset,
            settings=TimelineHostSettings(
                region=region.name,
                timelines_table=data.timelines.table.table_name,
                social_graph_table=naming.table_name(SOCIAL_GRAPH),
                tweets_table=naming.table_name(TWEETS),
                counts_table=data.counts.table.table_name,
                celebrity_follower_threshold=config.celebrity_follower_threshold,
                cache_mount=CACHE_MOUNT,
                port=SERVICE_PORT,
                token_settings_parameter=naming.TOKEN_SETTINGS_PARAMETER,
                media_base_url=config.media_base_url,
            ),
            target_group=self.load_balancer.target_group,
            load_balancer_security_group=self.load_balancer.security_group,
            table_arns=[
                data.timelines.table.table_arn,
                data.counts.table.table_arn,
                *map(source_table_arn, (TWEETS, SOCIAL_GRAPH)),
            ],
            # by_author: the read-time merge of celebrity authors' recent tweets.
            index_arns=[f"{source_table_arn(TWEETS)}/index/by_author"],
            boot_endpoints=[
                self.network.s3_endpoint,
                self.network.dynamodb_endpoint,
                self.network.interface_endpoints["Ssm"],
                self.network.interface_endpoints["CloudFormation"],
            ],
        )
        # In `local` the local runtime writes the token settings; moto runs no Lambda code.
        self.token_settings: TokenSettingsPublisher | None = None
        if not config.is_local:
            self.token_settings = TokenSettingsPublisher(
                self, "TokenSettings", log_retention_days=config.log_retention_days
            )
            for group in self.fleet.groups.values():
                group.node.add_dependency(self.token_settings.resource)

        self.write_path = WritePath(
            self,
            WRITE_PATH_ID,
            config=config,
            region=region.name,
            data=data,
            alert_topic=self.alerts.topic,
            token_settings=self.token_settings,
            certificate=self.certificate,
        )
        self.api = self.write_path.api

        self.alarms = FleetAlarms(
            self,
            "TimelineAlarms",
            load_balancer=self.load_balancer.alb,
            target_group=self.load_balancer.target_group,
            availability_zones=region.availability_zones,
            topic=self.alerts.topic,
        )
        if self.zone is not None:
            self._public_edge(config, region.name, self.zone)

    def _public_edge(self, config: DeploymentConfig, region: str, zone: route53.IHostedZone) -> None:
        """Zonal autoshift of the load balancer, and this region's latency records for both names."""
        self.autoshift = ZonalAutoshift(
            self, "ZonalAutoshift", load_balancer=self.load_balancer.alb, zone_alarms=self.alarms.alarms
        )
        if self.api is None or self.api.domain is None:
            raise ValueError("the public edge needs the write API and its custom domain (prod has both)")
        self.api_record = LatencyRecord(
            self,
            "ApiRecord",
            zone=zone,
            record_name=config.api_name,
            region=region,
            target=route53.RecordTarget.from_alias(
                targets.ApiGatewayv2DomainProperties(
                    self.api.domain.regional_domain_name, self.api.domain.regional_hosted_zone_id
                )
            ),
            health_host=self.api.endpoint_host,
            health_path=HEALTH_ROUTE.split(" ", 1)[1],
        )
        self.timeline_record = LatencyRecord(
            self,
            "TimelineRecord",
            zone=zone,
            record_name=config.timeline_name,
            region=region,
            target=route53.RecordTarget.from_alias(targets.LoadBalancerTarget(self.load_balancer.alb)),
            # The hosts' readiness: cache volume mounted, token settings loaded, DynamoDB reachable
            # or stale pages servable (hosts/timeline_service).
            health_host=self.load_balancer.alb.load_balancer_dns_name,
            health_path="/health",
        )
