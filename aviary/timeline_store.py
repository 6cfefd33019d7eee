"""Reads one timeline page from DynamoDB: the user's materialised entries plus celebrities' tweets.

Every read is eventually consistent (half the cost, served by any replica): a timeline a second
behind is fine. Blocking boto3 calls; the hosts run this in a thread executor under a deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from aviary.batches import BATCH_GET_MAX_KEYS, UnprocessedRetries, batch_get_items
from aviary.counts import Counts, value_of
from aviary.keys import FOLLOWS_PREFIX, TIMELINE_ENTRY_ATTRIBUTES, USER_PREFIX, user_id_from_sk, user_pk
from aviary.media_urls import MediaUrls
from aviary.recent_tweets import BY_AUTHOR
from aviary.timeline import TimelinePage, merge_timeline
from aviary.tweets import SUMMARY_ATTRIBUTES

# A celebrity who deleted many recent tweets must not turn one read into a long scan.
MAX_TWEET_PAGES = 10


def plain(value: dict[str, Any]) -> Any:
    """A DynamoDB attribute value as JSON-ready Python: numbers as int or float, sets as sorted lists."""
    (kind, inner), *_ = value.items()
    if kind == "S":
        return inner
    if kind == "N":
        number = Decimal(inner)
        return int(number) if number == number.to_integral_value() else float(number)
    if kind == "BOOL":
        return inner
    if kind == "NULL":
        return None
    if kind == "L":
        return [plain(element) for element in inner]
    if kind == "M":
        return {name: plain(element) for name, element in inner.items()}
    if kind in ("SS", "NS"):
        return sorted(plain({kind[0]: element}) for element in inner)
    raise ValueError(f"DynamoDB attribute type {kind} has no JSON form")


def plain_item(item: dict[str, dict[str, Any]]) -> dict[str, Any]:
    # Binary attributes have no JSON form and no place in a timeline item.
    return {name: plain(value) for name, value in item.items() if next(iter(value)) not in ("B", "BS")}


def _projection(names: Iterable[str]) -> dict[str, Any]:
    """A ProjectionExpression through placeholders: 'text' is a DynamoDB reserved word."""
    placeholders = {f"#p{i}": name for i, name in enumerate(names)}
    return {"ProjectionExpression": ", ".join(placeholders), "ExpressionAttributeNames": placeholders}


class TimelineStore:
    """The timeline read path's DynamoDB queries; the client is injected (aviary.clients builds it)."""

    def __init__(
        self,
        dynamodb_client: Any,
        timelines_table: str,
        social_graph_table: str,
        tweets_table: str,
        counts_table: str,
        celebrity_follower_threshold: int,
        *,
        urls: MediaUrls | None = None,
        batch_get_attempts: int = 4,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`urls` builds the pages' media URLs: a store built without it (timeline repair, which
        only queries) cannot read pages."""
        self.dynamodb = dynamodb_client
        self.urls = urls
        self.timelines_table = timelines_table
        self.social_graph_table = social_graph_table
        self.tweets_table = tweets_table
        self.counts_table = counts_table
        self.celebrity_follower_threshold = celebrity_follower_threshold
        self.batch_get_retries = UnprocessedRetries(attempts=batch_get_attempts, sleep=sleep)

    def read_page(self, user: str, limit: int, cursor: str | None) -> TimelinePage:
        """One page of `user`'s timeline older than `cursor` (a decoded entry key)."""
        if self.urls is None:
            raise ValueError(
                "this TimelineStore was built without media URLs (urls=...); it cannot read pages"
            )
        followed = self.followed_users(user)
        # One candidate beyond the limit from each source tells merge_timeline whether more exist.
        # Only entries of the user and of whom they follow now: an entry an unfollow has not yet
        # removed (aviary.follow_timelines) is never shown.
        entries = self.timeline_entries(user, limit + 1, cursor, authors={user, *followed})
        celebrities = self.celebrities_among(followed)
        tweets = [tweet for author in celebrities for tweet in self.recent_tweets(author, limit + 1, cursor)]
        return merge_timeline(entries, tweets, limit, cursor, urls=self.urls)

    def timeline_entries(
        self, user: str, count: int, cursor: str | None, *, authors: set[str] | None = None
    ) -> list[dict[str, Any]]:
        """Up to `count` materialised entries of `user`, newest first, older than `cursor`; only those
        by `authors` when given."""
        request: dict[str, Any] = {
            "TableName": self.timelines_table,
            "KeyConditionExpression": "user_id = :user",
            "ExpressionAttributeValues": {":user": {"S": user}},
            "ScanIndexForward": False,
            "ConsistentRead": False,
            **_projection(TIMELINE_ENTRY_ATTRIBUTES),
        }
        if cursor is not None:
            request["ExclusiveStartKey"] = {"user_id": {"S": user}, "entry_key": {"S": cursor}}
        entries: list[dict[str, Any]] = []
        # A page can stop short of Limit at 1 MB; keep going until there are enough or no more.
        while len(entries) < count:
            response = self.dynamodb.query(**request, Limit=count - len(entries))
            entries.extend(
                plain_item(item)
                for item in response.get("Items", [])
                if authors is None or item.get("author_id", {}).get("S") in authors
            )
            if "LastEvaluatedKey" not in response:
                break
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return entries

    def followed_users(self, user: str) -> list[str]:
        """Everyone `user` follows, from the FOLLOWS# side of the social graph."""
        request: dict[str, Any] = {
            "TableName": self.social_graph_table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :follows)",
            "ExpressionAttributeValues": {":pk": {"S": user_pk(user)}, ":follows": {"S": FOLLOWS_PREFIX}},
            "ProjectionExpression": "sk",
            "ConsistentRead": False,
        }
        users: list[str] = []
        while True:
            response = self.dynamodb.query(**request)
            users.extend(user_id_from_sk(item["sk"]["S"]) for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return users
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def celebrities_among(self, users: Iterable[str]) -> list[str]:
        """Those of `users` with more followers than the threshold in this region's counts, sorted."""
        unique = sorted(set(users))
        celebrities: list[str] = []
        for start in range(0, len(unique), BATCH_GET_MAX_KEYS):
            keys = [Counts.followers_key(h) for h in unique[start : start + BATCH_GET_MAX_KEYS]]
            for counter in self._batch_get(self.counts_table, keys):
                if value_of(counter) > self.celebrity_follower_threshold:
                    celebrities.append(counter["pk"]["S"].removeprefix(USER_PREFIX))
        return sorted(celebrities)

    def _batch_get(self, table: str, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return batch_get_items(self.dynamodb, table, keys, self.batch_get_retries)

    def recent_tweets(self, author: str, count: int, cursor: str | None) -> list[dict[str, Any]]:
        """Up to `count` of `author`'s newest tweets not deleted, at or before the cursor's time."""
        condition = "author_id = :author"
        values: dict[str, Any] = {":author": {"S": author}}
        if cursor is not None:
            # created_at <= the cursor's time: tweets of the same millisecond are decided by the merge.
            condition += " AND created_at <= :before"
            values[":before"] = {"S": cursor.split("#", 1)[0]}
        request: dict[str, Any] = {
            "TableName": self.tweets_table,
            "IndexName": BY_AUTHOR,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
            "ConsistentRead": False,
        }
        tweets: list[dict[str, Any]] = []
        for _ in range(MAX_TWEET_PAGES):
            response = self.dynamodb.query(**request, Limit=count - len(tweets))
            for item in response.get("Items", []):
                if item.get("deleted", {}).get("BOOL") is True:
                    continue
                tweets.append(plain_item(item))
            if len(tweets) >= count or "LastEvaluatedKey" not in response:
                break
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return self._with_originals(tweets)

    def _with_originals(self, tweets: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Retweets with what their originals show now; a retweet of a deleted tweet is not shown."""
        wanted = sorted({tweet["retweet_of"] for tweet in tweets if tweet.get("retweet_of")})
        originals: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), BATCH_GET_MAX_KEYS):
            keys = [{"tweet_id": {"S": tweet_id}} for tweet_id in wanted[start : start + BATCH_GET_MAX_KEYS]]
            for item in self._batch_get(self.tweets_table, keys):
                if item.get("deleted", {}).get("BOOL") is not True:
                    originals[item["tweet_id"]["S"]] = plain_item(
                        {name: value for name, value in item.items() if name in SUMMARY_ATTRIBUTES}
                    )
        shown = []
        for tweet in tweets:
            if tweet.get("retweet_of"):
                if tweet["retweet_of"] not in originals:
                    continue
                tweet = {**tweet, "original": originals[tweet["retweet_of"]]}
            shown.append(tweet)
        return shown
