"""Fan-out: this region's tweet stream -> this region's Timelines table."""

from __future__ import annotations

from constructs import Construct

from aviary.timeline_settings import TimelineSettings
from aviary.tombstones import BY_ORIGINAL
from stacks.components.stream_consumer import StreamConsumer


class TweetFanout(StreamConsumer):
    """Every region materialises its own timelines from every tweet, exactly once per region."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stream_arn: str,
        settings: TimelineSettings,
        read_table_arns: list[str],
        timelines_table_arn: str,
        tweets_table_arn: str,
        log_retention_days: int,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            handler="lambda_functions.fanout.handler.handler",
            service="fanout",
            description="Aviary fan-out: tweet stream -> regional timelines",
            holds="tweet stream records",
            stream_arn=stream_arn,
            settings=settings,
            log_retention_days=log_retention_days,
        )
        self.grant(["dynamodb:GetItem", "dynamodb:Query"], read_table_arns)
        # Query: trimming a timeline to its cap reads which entries are the oldest.
        self.grant(
            ["dynamodb:BatchWriteItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Query"],
            [timelines_table_arn],
        )
        # A deleted tweet's retweets are found by their index and made tombstones.
        self.grant(["dynamodb:Query"], [f"{tweets_table_arn}/index/{BY_ORIGINAL}"])
        self.grant(["dynamodb:UpdateItem"], [tweets_table_arn])
