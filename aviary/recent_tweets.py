"""An author's newest live tweets, as timelines show them: what backfill on follow and timeline repair
copy entries from (the fan-out copies them one tweet at a time, as they are posted)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from aviary.batches import BATCH_GET_MAX_KEYS, UnprocessedRetries, batch_get_items
from aviary.tweets import Tweet

BY_AUTHOR = "by_author"  # the tweets table's index of an author's tweets by time (aviary.schema.TWEETS)


class RecentTweets:
    """Reads the tweets table's by_author index; the DynamoDB client is injected."""

    def __init__(
        self, dynamodb_client: Any, tweets_table: str, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.dynamodb = dynamodb_client
        self.tweets_table = tweets_table
        self._batch_get_retries = UnprocessedRetries(sleep=sleep)

    def newest(self, author: str, count: int, *, since: str) -> list[tuple[Tweet, Tweet | None]]:
        """Up to `count` of `author`'s newest live tweets created at or after `since` (a created_at
        value), newest first, each with its original when it is a retweet. A retweet whose original
        is deleted, or not (yet) in this region, is left out, as the read path leaves it out."""
        live = list(self._live(author, count, since))
        originals = self._originals(sorted({t.retweet_of for t in live if t.retweet_of}))
        return [
            (tweet, originals.get(tweet.retweet_of) if tweet.retweet_of else None)
            for tweet in live
            if not tweet.retweet_of or tweet.retweet_of in originals
        ]

    def _live(self, author: str, count: int, since: str) -> Iterator[Tweet]:
        request: dict[str, Any] = {
            "TableName": self.tweets_table,
            "IndexName": BY_AUTHOR,
            "KeyConditionExpression": "author_id = :author AND created_at >= :since",
            "ExpressionAttributeValues": {":author": {"S": author}, ":since": {"S": since}},
            "ScanIndexForward": False,
        }
        found = 0
        while found < count:
            response = self.dynamodb.query(**request, Limit=count - found)
            for item in response.get("Items", []):
                if item.get("deleted", {}).get("BOOL") is not True:
                    found += 1
                    yield Tweet.from_item(item)
            if "LastEvaluatedKey" not in response:
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _originals(self, tweet_ids: list[str]) -> dict[str, Tweet]:
        """The live tweets among `tweet_ids`, by ID (strongly consistent: a delete is seen at once)."""
        originals: dict[str, Tweet] = {}
        for start in range(0, len(tweet_ids), BATCH_GET_MAX_KEYS):
            keys = [{"tweet_id": {"S": each}} for each in tweet_ids[start : start + BATCH_GET_MAX_KEYS]]
            for item in batch_get_items(
                self.dynamodb, self.tweets_table, keys, self._batch_get_retries, consistent=True
            ):
                if item.get("deleted", {}).get("BOOL") is not True:
                    originals[item["tweet_id"]["S"]] = Tweet.from_item(item)
        return originals

    def still_live(self, tweet_ids: list[str]) -> set[str]:
        """Those of `tweet_ids` that are live now (strongly consistent reads)."""
        return set(self._originals(tweet_ids))
