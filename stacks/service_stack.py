"""Per-region stateless stack: network, read fleet and alarms; the write-path functions join it; in
prod also the region's public edge (certificate, custom domain, health-checked latency records)."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as targets
from constructs import Construct

from aviary import naming
from aviary.media_urls import MEDIA_BASE_URL_VARIABLE
from aviary.schema import IDEMPOTENCY, MEDIA, SOCIAL_GRAPH, SOURCE_OF_TRUTH_TABLES, TWEETS, TableSchema
from stacks.acknowledge import acknowledge
from stacks.components.code_bundles import HostBundle
from stacks.components.fleet_alarms import FleetAlarms
from stacks.components.function_alarms import FunctionAlarms
from stacks.components.host_fleet import HostFleet, HostSettings, architecture_of
from stacks.components.latency_record import LatencyRecord
from stacks.components.media_processing import MediaProcessing
from stacks.components.network import Network
from stacks.components.operator_alerts import OperatorAlerts
from stacks.components.replica_stream import ReplicaStream
from stacks.components.stream_consumer import StreamConsumer
from stacks.components.timeline_load_balancer import TimelineLoadBalancer
from stacks.components.timeline_upkeep import TimelineUpkeep
from stacks.components.token_settings import TokenSettingsPublisher
from stacks.components.tweet_fanout import TweetFanout
from stacks.components.write_api import HEALTH_ROUTE, CustomDomain, WriteApi
from stacks.components.write_function import API_TIMEOUT, write_function
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
                counts_table=data.counts.table.table_name,
                celebrity_follower_threshold=config.celebrity_follower_threshold,
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

        self._write_path(config, region.name, data)

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

    def _write_path(self, config: DeploymentConfig, region: str, data: RegionalDataStack) -> None:
        """Handlers, fan-out and media processing; in prod also the public API."""

        def table_arn(schema: TableSchema) -> str:
            return f"arn:aws:dynamodb:{region}:{config.account}:table/{naming.table_name(schema)}"

        environment = {
            "AVIARY_TWEETS_TABLE": naming.table_name(TWEETS),
            "AVIARY_SOCIAL_GRAPH_TABLE": naming.table_name(SOCIAL_GRAPH),
            "AVIARY_IDEMPOTENCY_TABLE": naming.table_name(IDEMPOTENCY),
            "AVIARY_MEDIA_TABLE": naming.table_name(MEDIA),
            "AVIARY_MEDIA_BUCKET": naming.media_bucket_name(config.account, region),
            "AVIARY_TIMELINES_TABLE": data.timelines.table.table_name,
            "AVIARY_COUNTS_TABLE": data.counts.table.table_name,
            "AVIARY_CELEBRITY_THRESHOLD": str(config.celebrity_follower_threshold),
            "AVIARY_TIMELINE_MAX_ENTRIES": str(config.timeline_max_entries),
        }
        read_write = [
            "dynamodb:GetItem",
            "dynamodb:BatchGetItem",
            "dynamodb:Query",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:ConditionCheckItem",
        ]
        # Every route claims its caller's handle in the social graph on their first request.
        api_tables = {
            "tweets": [TWEETS, SOCIAL_GRAPH, IDEMPOTENCY, MEDIA],
            "users": [SOCIAL_GRAPH],
            "media": [MEDIA, SOCIAL_GRAPH],
        }
        # The groups whose answers show tweets, and so their media's URLs (media.<domainName>).
        shows_tweets = {"tweets"}
        self.api_functions: dict[str, lambda_.Function] = {}
        for group, schemas in api_tables.items():
            function = write_function(
                self,
                f"Api{group.capitalize()}",
                handler=f"lambda_functions.api.{group}.handler",
                service=f"api-{group}",
                environment=(
                    {**environment, MEDIA_BASE_URL_VARIABLE: config.media_base_url}
                    if group in shows_tweets
                    else environment
                ),
                timeout=API_TIMEOUT,
                log_retention_days=config.log_retention_days,
                description=f"Aviary API: {group} routes",
            )
            function.add_to_role_policy(
                iam.PolicyStatement(actions=read_write, resources=[table_arn(s) for s in schemas])
            )
            self.api_functions[group] = function
        # Reads one missing item of each source table: whether the region can serve (GET /health).
        self.health_function = write_function(
            self,
            "ApiHealth",
            handler="lambda_functions.api.health.handler",
            service="api-health",
            environment=environment,
            timeout=Duration.seconds(5),
            log_retention_days=config.log_retention_days,
            description="Aviary API: GET /health, whether this region's source tables answer",
        )
        self.health_function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem"], resources=[table_arn(s) for s in SOURCE_OF_TRUTH_TABLES]
            )
        )
        # A tweet is read with this region's count of its likes.
        self.api_functions["tweets"].add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:BatchGetItem"], resources=[data.counts.table.table_arn]
            )
        )
        # Presigned uploads are signed with the media function's own permissions.
        media_bucket_arn = f"arn:aws:s3:::{naming.media_bucket_name(config.account, region)}"
        self.api_functions["media"].add_to_role_policy(
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[f"{media_bucket_arn}/media/*"])
        )
        acknowledge(
            self.api_functions["media"].role,
            f"AwsSolutions-IAM5[Resource::{media_bucket_arn}/media/*]",
            "Upload URLs are signed for a new object key each time; the wildcard covers only the "
            "media/ prefix of this region's media bucket.",
        )
        # S3 asks KMS for a data key on behalf of whoever signed the upload URL.
        data.media.key.grant(self.api_functions["media"], "kms:GenerateDataKey", "kms:Decrypt")

        def stream_arn(schema: TableSchema, construct_id: str) -> str:
            """This region's stream of a source table (in prod, of its replica, looked up at deploy)."""
            if config.is_local:
                return data.source_tables.tables[schema.role].table_stream_arn
            name = naming.table_name(schema)
            return ReplicaStream(
                self,
                construct_id,
                table_name=name,
                table_arn=table_arn(schema),
                log_retention_days=config.log_retention_days,
            ).stream_arn

        self.fanout = TweetFanout(
            self,
            "Fanout",
            stream_arn=stream_arn(TWEETS, "TweetsStream"),
            environment=environment,
            # The tweets table too: an insert checks its tweet is still live after fanning it out.
            read_table_arns=[table_arn(SOCIAL_GRAPH), table_arn(TWEETS), data.counts.table.table_arn],
            timelines_table_arn=data.timelines.table.table_arn,
            tweets_table_arn=table_arn(TWEETS),
            log_retention_days=config.log_retention_days,
        )
        # Two readers of the social graph's stream, DynamoDB Streams' limit per shard.
        graph_stream = stream_arn(SOCIAL_GRAPH, "SocialGraphStream")
        self.edge_counts = StreamConsumer(
            self,
            "EdgeCounts",
            handler="lambda_functions.graph_stream.handler.handler",
            service="graph-stream",
            description="Aviary: social graph stream -> regional like and follower counts",
            holds="social graph stream records",
            stream_arn=graph_stream,
            environment=environment,
            log_retention_days=config.log_retention_days,
        )
        # A count and the marker of the edge it counted change in one transaction.
        self.edge_counts.grant(
            ["dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:UpdateItem"], [data.counts.table.table_arn]
        )
        self.timeline_upkeep = TimelineUpkeep(
            self,
            "TimelineUpkeep",
            graph_stream_arn=graph_stream,
            environment=environment,
            social_graph_table_arn=table_arn(SOCIAL_GRAPH),
            tweets_table_arn=table_arn(TWEETS),
            counts_table_arn=data.counts.table.table_arn,
            timelines_table_arn=data.timelines.table.table_arn,
            log_retention_days=config.log_retention_days,
        )
        self.duplicate_posts = StreamConsumer(
            self,
            "DuplicatePosts",
            handler="lambda_functions.idempotency_stream.handler.handler",
            service="idempotency-stream",
            description="Aviary: idempotency stream -> one tweet for a post accepted in two regions",
            holds="idempotency stream records",
            stream_arn=stream_arn(IDEMPOTENCY, "IdempotencyStream"),
            environment=environment,
            log_retention_days=config.log_retention_days,
            # A record replaced by another region's is a MODIFY; a new post's record is an INSERT.
            filters=({"eventName": lambda_.FilterRule.is_equal("MODIFY")},),
        )
        # The losing post becomes a tombstone.
        self.duplicate_posts.grant(["dynamodb:UpdateItem"], [table_arn(TWEETS)])
        self.media_processing = MediaProcessing(
            self,
            "MediaProcessing",
            uploads=data.media.uploads,
            bucket_arn=media_bucket_arn,
            media_key=data.media.key,
            media_table_arn=table_arn(MEDIA),
            environment=environment,
            log_retention_days=config.log_retention_days,
        )
        FunctionAlarms(
            self,
            "WritePathAlarms",
            functions={
                **{f"Api{g.capitalize()}": f for g, f in self.api_functions.items()},
                "ApiHealth": self.health_function,
                "Fanout": self.fanout.function,
                "EdgeCounts": self.edge_counts.function,
                "FollowTimelines": self.timeline_upkeep.follows.function,
                "TimelineRepair": self.timeline_upkeep.repair,
                "DuplicatePosts": self.duplicate_posts.function,
                "MediaProcessor": self.media_processing.function,
            },
            stream_consumers={
                "Fanout": self.fanout.function,
                "EdgeCounts": self.edge_counts.function,
                "FollowTimelines": self.timeline_upkeep.follows.function,
                "DuplicatePosts": self.duplicate_posts.function,
            },
            failure_queues={
                "FanoutFailures": self.fanout.failures,
                "EdgeCountsFailures": self.edge_counts.failures,
                "FollowTimelinesFailures": self.timeline_upkeep.follows.failures,
                "DuplicatePostsFailures": self.duplicate_posts.failures,
                "UploadFailures": data.media.upload_failures,
            },
            topic=self.alerts.topic,
        )

        # moto has no API Gateway JWT authorizer to run: in `local` the local runtime checks the
        # token the same way and calls the same handlers.
        self.api: WriteApi | None = None
        if self.token_settings is not None:
            self.api = WriteApi(
                self,
                "WriteApi",
                functions=self.api_functions,
                health=self.health_function,
                issuer=self.token_settings.resource.get_att_string("Issuer"),
                audience=self.token_settings.resource.get_att_string("Audience"),
                log_retention_days=config.log_retention_days,
                domain=CustomDomain(config.api_name, self.certificate) if self.certificate else None,
            )
            CfnOutput(self, "WriteApiUrl", value=self.api.url)
