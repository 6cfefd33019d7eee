"""Per-region stateless stack: network, read fleet and alarms; the write-path functions join it."""

from __future__ import annotations

from aws_cdk import Stack
from constructs import Construct

from aviary import naming
from aviary.schema import SOCIAL_GRAPH, TWEETS, TableSchema
from stacks.components.fleet_alarms import FleetAlarms
from stacks.components.host_bundle import HostBundle
from stacks.components.host_fleet import HostFleet, HostSettings, architecture_of
from stacks.components.network import Network
from stacks.components.operator_alerts import OperatorAlerts
from stacks.components.timeline_load_balancer import TimelineLoadBalancer
from stacks.components.token_settings import TokenSettingsPublisher
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
            flow_log_retention_days=config.log_retention_days,
            restrict_default_security_group=not config.is_local,
        )
        vpc = self.network.vpc
        self.alerts = OperatorAlerts(self, "Alerts")

        self.load_balancer = TimelineLoadBalancer(
            self, "TimelineLoadBalancer", vpc=vpc, log_retention_days=config.log_retention_days
        )
        bundle = HostBundle(self, "HostBundle", architecture=architecture_of(config.host_instance_type))

        # Source tables are found by their derived names: in prod the replica in this region
        # belongs to the primary region's stack.
        def source_table_arn(schema: TableSchema) -> str:
            return f"arn:aws:dynamodb:{region.name}:{config.account}:table/{naming.table_name(schema)}"

        self.fleet = HostFleet(
            self,
            "TimelineHosts",
            vpc=vpc,
            instance_type=config.host_instance_type,
            hosts_per_az=config.hosts_per_az,
            bundle=bundle.asset,
            settings=HostSettings(
                region=region.name,
                timelines_table=data.timelines.table.table_name,
                social_graph_table=naming.table_name(SOCIAL_GRAPH),
                tweets_table=naming.table_name(TWEETS),
                celebrity_follower_threshold=config.celebrity_follower_threshold,
                token_settings_parameter=naming.TOKEN_SETTINGS_PARAMETER,
            ),
            target_group=self.load_balancer.target_group,
            load_balancer_security_group=self.load_balancer.security_group,
            table_arns=[data.timelines.table.table_arn, *map(source_table_arn, (TWEETS, SOCIAL_GRAPH))],
            # by_author: the read-time merge of celebrity authors' recent tweets.
            index_arns=[f"{source_table_arn(TWEETS)}/index/{index.name}" for index in TWEETS.indexes],
        )
        # In `local` the local runtime writes the token settings; moto runs no Lambda code.
        self.token_settings: TokenSettingsPublisher | None = None
        if not config.is_local:
            self.token_settings = TokenSettingsPublisher(
                self,
                "TokenSettings",
                primary_region=config.primary_region,
                log_retention_days=config.log_retention_days,
            )
            for group in self.fleet.groups.values():
                group.node.add_dependency(self.token_settings.resource)

        self.alarms = FleetAlarms(
            self,
            "TimelineAlarms",
            load_balancer=self.load_balancer.alb,
            target_group=self.load_balancer.target_group,
            availability_zones=region.availability_zones,
            topic=self.alerts.topic,
        )
