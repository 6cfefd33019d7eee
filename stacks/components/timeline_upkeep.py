"""Timelines kept right when follows change or a consumer missed something: the social graph's
follow records backfill and remove entries (aviary.follow_timelines), and an operator's function
recomputes named users' timelines from source data (aviary.timeline_repair)."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from aviary.keys import FOLLOWS_PREFIX
from aviary.recent_tweets import BY_AUTHOR
from aviary.timeline_settings import TimelineSettings
from stacks.components.stream_consumer import StreamConsumer
from stacks.components.write_function import EVENT_TIMEOUT, write_function


class TimelineUpkeep(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        graph_stream_arn: str,
        settings: TimelineSettings,
        social_graph_table_arn: str,
        tweets_table_arn: str,
        counts_table_arn: str,
        timelines_table_arn: str,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.follows = StreamConsumer(
            self,
            "FollowTimelines",
            handler="lambda_functions.follow_stream.handler.handler",
            service="follow-stream",
            description="Aviary: follows and unfollows -> regional timelines (backfill and removal)",
            holds="social graph stream records of follows",
            stream_arn=graph_stream_arn,
            settings=settings,
            log_retention_days=log_retention_days,
            # Only the FOLLOWS# side of an edge: likes, the FOLLOWER# side and handles never reach it.
            filters=({"dynamodb": {"Keys": {"sk": {"S": lambda_.FilterRule.begins_with(FOLLOWS_PREFIX)}}}},),
        )
        self.repair = write_function(
            self,
            "TimelineRepair",
            handler="lambda_functions.timeline_repair.handler.handler",
            service="timeline-repair",
            settings=settings,
            # Short, as every function: an invocation repairs at most 20 users (a few dozen calls each).
            timeout=EVENT_TIMEOUT,
            log_retention_days=log_retention_days,
            description="Aviary: recompute named users' timelines in this region (run by an operator)",
        )
        for function in (self.follows.function, self.repair):
            grants = {
                # An edge read, a handle looked up, whom a user follows.
                social_graph_table_arn: ["dynamodb:GetItem", "dynamodb:Query"],
                # Followees' recent tweets by author; originals and liveness by key.
                tweets_table_arn: ["dynamodb:GetItem", "dynamodb:BatchGetItem"],
                f"{tweets_table_arn}/index/{BY_AUTHOR}": ["dynamodb:Query"],
                counts_table_arn: ["dynamodb:GetItem", "dynamodb:BatchGetItem"],
                timelines_table_arn: ["dynamodb:Query", "dynamodb:BatchWriteItem"],
            }
            for resource, actions in grants.items():
                function.add_to_role_policy(iam.PolicyStatement(actions=actions, resources=[resource]))
