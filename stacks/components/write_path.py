"""The write path: API handlers, stream consumers, media processing, their alarms, and in prod the
public API in front of the handlers."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from constructs import Construct

from aviary import naming
from aviary.api_settings import ApiHealthSettings, ApiMediaSettings, ApiTweetsSettings, ApiUsersSettings
from aviary.consumer_settings import DuplicatePostsSettings, EdgeCountsSettings, MediaProcessorSettings
from aviary.schema import IDEMPOTENCY, MEDIA, SOCIAL_GRAPH, SOURCE_OF_TRUTH_TABLES, TWEETS, TableSchema
from aviary.settings import EnvironmentSettings
from aviary.timeline_settings import TimelineSettings
from stacks.acknowledge import acknowledge
from stacks.components import arns
from stacks.components.function_alarms import FunctionAlarms
from stacks.components.media_processing import MediaProcessing
from stacks.components.replica_stream import ReplicaStream
from stacks.components.stream_consumer import StreamConsumer
from stacks.components.timeline_upkeep import TimelineUpkeep
from stacks.components.token_settings import TokenSettingsPublisher
from stacks.components.tweet_fanout import TweetFanout
from stacks.components.write_api import CustomDomain, WriteApi
from stacks.components.write_function import API_TIMEOUT, write_function
from stacks.config import DeploymentConfig
from stacks.data_stack import RegionalDataStack

# CDK leaves a construct named "Default" out of its children's logical IDs: the write path's
# resources keep the IDs they had when the service stack built them itself, so moving them here
# replaced nothing (failure queues hold records, log groups are retained).
WRITE_PATH_ID = "Default"

READ_WRITE = (
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:ConditionCheckItem",
)
# Every route claims its caller's handle in the social graph on their first request.
API_TABLES = {
    "tweets": (TWEETS, SOCIAL_GRAPH, IDEMPOTENCY, MEDIA),
    "users": (SOCIAL_GRAPH,),
    "media": (MEDIA, SOCIAL_GRAPH),
}


class WritePath(Construct):
    """One region's writers: every function that changes a table, with only the permissions it
    needs; in prod the JWT-authorized HTTP API in front of the handlers (self.api)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        region: str,
        data: RegionalDataStack,
        alert_topic: sns.ITopic,
        token_settings: TokenSettingsPublisher | None,
        certificate: acm.ICertificate | None,
    ) -> None:
        super().__init__(scope, construct_id)

        def table_arn(schema: TableSchema) -> str:
            return arns.source_table_arn(self, schema, region=region)

        # Each function is told the names of only the tables it has a grant on. Source tables have
        # derived names; the derived tables are named by CloudFormation.
        tweets, social_graph = naming.table_name(TWEETS), naming.table_name(SOCIAL_GRAPH)
        idempotency, media = naming.table_name(IDEMPOTENCY), naming.table_name(MEDIA)
        media_bucket = naming.media_bucket_name(config.account, region)
        timelines, counts = data.timelines.table.table_name, data.counts.table.table_name
        api_settings: dict[str, EnvironmentSettings] = {
            "tweets": ApiTweetsSettings(
                social_graph_table=social_graph,
                tweets_table=tweets,
                idempotency_table=idempotency,
                media_table=media,
                counts_table=counts,
                media_base_url=config.media_base_url,  # tweets show their media's URLs
            ),
            "users": ApiUsersSettings(social_graph_table=social_graph),
            "media": ApiMediaSettings(
                social_graph_table=social_graph, media_table=media, media_bucket=media_bucket
            ),
        }
        timeline_settings = TimelineSettings(
            timelines_table=timelines,
            tweets_table=tweets,
            social_graph_table=social_graph,
            counts_table=counts,
            celebrity_threshold=config.celebrity_follower_threshold,
            max_entries=config.timeline_max_entries,
            # No setting of its own: the default, written out so that the template states it.
        )
        self.api_functions: dict[str, lambda_.Function] = {}
        for group, schemas in API_TABLES.items():
            function = write_function(
                self,
                f"Api{group.capitalize()}",
                handler=f"lambda_functions.api.{group}.handler",
                service=f"api-{group}",
                settings=api_settings[group],
                timeout=API_TIMEOUT,
                log_retention_days=config.log_retention_days,
                description=f"Aviary API: {group} routes",
            )
            function.add_to_role_policy(
                iam.PolicyStatement(actions=list(READ_WRITE), resources=[table_arn(s) for s in schemas])
            )
            self.api_functions[group] = function
        # Reads one missing item of each source table: whether the region can serve (GET /health).
        self.health_function = write_function(
            self,
            "ApiHealth",
            handler="lambda_functions.api.health.handler",
            service="api-health",
            settings=ApiHealthSettings(
                tweets_table=tweets,
                social_graph_table=social_graph,
                idempotency_table=idempotency,
                media_table=media,
            ),
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
        media_bucket_arn = arns.media_bucket_arn(self, config.account, region)
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
            settings=timeline_settings,
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
            settings=EdgeCountsSettings(counts_table=counts),
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
            settings=timeline_settings,
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
            settings=DuplicatePostsSettings(tweets_table=tweets),
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
            settings=MediaProcessorSettings(media_table=media, media_bucket=media_bucket),
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
            topic=alert_topic,
        )

        # moto has no API Gateway JWT authorizer to run: in `local` the local runtime checks the
        # token the same way and calls the same handlers.
        self.api: WriteApi | None = None
        if token_settings is not None:
            self.api = WriteApi(
                self,
                "WriteApi",
                functions=self.api_functions,
                health=self.health_function,
                issuer=token_settings.resource.get_att_string("Issuer"),
                audience=token_settings.resource.get_att_string("Audience"),
                log_retention_days=config.log_retention_days,
                domain=CustomDomain(config.api_name, certificate) if certificate else None,
            )
            CfnOutput(self, "WriteApiUrl", value=self.api.url)
