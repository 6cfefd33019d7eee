"""Tweets the system deletes, not their authors: a duplicate of a post, a retweet of a deleted tweet.

A tombstone is what any delete leaves (deleted = true, text and media removed), so every region's
fan-out takes it out of timelines and a late copy of the tweet cannot bring it back. Each records
why: `duplicate_of` the tweet kept in its place, or `deleted_with` the original it went with.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

# The tweets table's index of retweets by the tweet they retweet (aviary.schema.TWEETS).
BY_ORIGINAL = "by_original"


class Tombstones:
    def __init__(self, dynamodb_client: Any, tweets_table: str) -> None:
        self.dynamodb = dynamodb_client
        self.tweets_table = tweets_table

    def bury(self, tweet_id: str, **reason: str) -> bool:
        """Make the tweet a tombstone saying why (`reason`: attribute -> tweet ID); False when it is
        absent here or a tombstone already, so burying twice changes nothing."""
        names = {f"#r{i}": name for i, name in enumerate(reason)}
        values = {f":r{i}": {"S": value} for i, value in enumerate(reason.values())}
        settings = ", ".join(f"{name} = {value}" for name, value in zip(names, values, strict=True))
        try:
            self.dynamodb.update_item(
                TableName=self.tweets_table,
                Key={"tweet_id": {"S": tweet_id}},
                UpdateExpression=f"SET deleted = :true, {settings} REMOVE #text, media_ids, media_versions",
                ConditionExpression="attribute_exists(tweet_id) AND deleted = :false",
                ExpressionAttributeNames={"#text": "text", **names},
                ExpressionAttributeValues={":true": {"BOOL": True}, ":false": {"BOOL": False}, **values},
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def retweets_of(self, original_id: str) -> Iterator[str]:
        """The IDs of the live retweets of a tweet, page by page (the index is eventually consistent)."""
        request: dict[str, Any] = {
            "TableName": self.tweets_table,
            "IndexName": BY_ORIGINAL,
            "KeyConditionExpression": "retweet_of = :original",
            "FilterExpression": "deleted = :false",
            "ExpressionAttributeValues": {":original": {"S": original_id}, ":false": {"BOOL": False}},
            "ProjectionExpression": "tweet_id",
        }
        while True:
            response = self.dynamodb.query(**request)
            yield from (item["tweet_id"]["S"] for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
