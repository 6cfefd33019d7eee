"""The tweet write path: post, delete, retweet, like and unlike, each safe to retry.

Every change is one conditional write or one TransactWriteItems, so a check that fails leaves
nothing behind and a repeated request changes nothing (see docs/architecture.md, idempotent interfaces).

The tables are global tables, and DynamoDB resolves concurrent writes to one item from two regions
by last writer wins over the whole item. So the tweet item is written only when it is created (post,
retweet) and when it becomes a tombstone (delete): nothing else may race a delete and bring the
text back. A like is an edge item of its own; each region counts the likes it holds (aviary.counts).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from botocore.exceptions import ClientError

from aviary.batches import BatchIncomplete, UnprocessedRetries, batch_get
from aviary.counts import Counts, value_of
from aviary.errors import Conflict, Forbidden, NotFound, ServiceUnavailable, ValidationError
from aviary.ids import RANDOM_BYTES, new_ulid
from aviary.keys import idempotency_id, like_sk, retweet_sk, tweet_pk, user_pk
from aviary.social_graph import CONDITIONAL_CHECK_FAILED, cancellation_codes, only_condition_failures
from aviary.tweets import Tweet

POST_OPERATION = "post-tweet"
DEFAULT_IDEMPOTENCY_TTL_SECONDS = 24 * 60 * 60
# Each extra attempt follows a lost race with a concurrent retweet by the same user; a few suffice.
MAX_RETWEET_ATTEMPTS = 3
# BatchGetItem leaves keys unprocessed under throttling: ask again this often, backing off between.
BATCH_GET_ATTEMPTS = 3

_LIVE_TWEET = "attribute_exists(tweet_id) AND deleted = :false"
_FALSE = {"BOOL": False}


class MediaChecker(Protocol):
    """Confirms that media may be attached to a new tweet (implemented over the media table)."""

    def assert_ready(self, owner: str, media_ids: tuple[str, ...]) -> Mapping[str, str]:
        """Raise ValidationError(field="media_ids") for media that is unknown, not owner's, or unprocessed;
        else return the accepted object version of each media ID that has one."""
        ...


def request_hash(text: str, reply_to: str | None, media_ids: tuple[str, ...]) -> str:
    """SHA-256 of the request's canonical JSON: equal requests hash equal whatever their key order."""
    canonical = json.dumps(
        {"text": text, "reply_to": reply_to, "media_ids": list(media_ids)},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def tweet_to_json(tweet: Tweet) -> dict[str, Any]:
    """The tweet as an idempotency record keeps it to replay: a tweet's API fields without its media
    URLs (their base URL is each reader's setting), with the accepted media versions instead."""
    return {
        "id": tweet.tweet_id,
        "author": tweet.author_id,
        "created_at": tweet.created_at,
        "text": tweet.text,
        "reply_to": tweet.reply_to,
        "retweet_of": tweet.retweet_of,
        "media_ids": list(tweet.media_ids),
        "media_versions": dict(tweet.media_versions),
        "like_count": tweet.like_count,
        "deleted": tweet.deleted,
    }


def tweet_from_json(data: dict[str, Any]) -> Tweet:
    """The Tweet behind tweet_to_json(), for replaying a stored response. Records written before media
    versions were kept have none: their media URLs are then unpinned."""
    return Tweet(
        tweet_id=data["id"],
        author_id=data["author"],
        created_at=data["created_at"],
        text=data["text"],
        reply_to=data.get("reply_to"),
        retweet_of=data.get("retweet_of"),
        media_ids=tuple(data.get("media_ids") or ()),
        media_versions=dict(data.get("media_versions") or {}),
        deleted=bool(data.get("deleted", False)),
        like_count=int(data.get("like_count", 0)),
    )


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class TweetService:
    """Tweet writes over the tweets, social-graph and idempotency tables, and reads of this region's
    like counts; every dependency is injected."""

    def __init__(
        self,
        dynamodb_client: Any,
        *,
        tweets_table: str,
        social_graph_table: str,
        idempotency_table: str,
        counts_table: str,
        media_checker: MediaChecker,
        clock_ms: Callable[[], int] = _wall_clock_ms,
        random_bytes: Callable[[int], bytes] = os.urandom,
        idempotency_ttl_seconds: int = DEFAULT_IDEMPOTENCY_TTL_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._dynamodb = dynamodb_client
        self._tweets = tweets_table
        self._graph = social_graph_table
        self._idempotency = idempotency_table
        self._counts = counts_table
        self._media_checker = media_checker
        self._clock_ms = clock_ms
        self._random_bytes = random_bytes
        self._ttl_seconds = idempotency_ttl_seconds
        self._batch_get_retries = UnprocessedRetries(attempts=BATCH_GET_ATTEMPTS, sleep=sleep)

    # -- post ------------------------------------------------------------------------------------

    def post(
        self,
        author: str,
        idempotency_key: str,
        text: str,
        reply_to: str | None = None,
        media_ids: Sequence[str] = (),
    ) -> tuple[Tweet, bool]:
        """Post a tweet once per idempotency key; a retry of the same request returns the same tweet."""
        media = tuple(media_ids)
        record_id = idempotency_id(POST_OPERATION, author, idempotency_key)
        digest = request_hash(text, reply_to, media)
        versions: Mapping[str, str] = {}
        try:
            if reply_to is not None:
                # Consistent, so replying to a tweet just posted in this region is never refused.
                self._load_live(reply_to, field="reply_to", consistent=True)
            if media:
                # Kept on the tweet, so every read shows URLs pinned to the accepted bytes.
                versions = self._media_checker.assert_ready(author, media)
        except (NotFound, ValidationError):
            # A retry of a request that already succeeded gets its tweet back even when the tweet
            # it replied to has been deleted since. This read happens on the error path only.
            replayed = self._replay(record_id, digest, idempotency_key, self._clock_ms() // 1000)
            if replayed is None:
                raise
            return replayed, False

        now_ms = self._clock_ms()
        tweet = self._new_tweet(
            now_ms, author, text, reply_to=reply_to, media_ids=media, media_versions=dict(versions)
        )
        now_s = now_ms // 1000
        record = {
            "id": {"S": record_id},
            "request_hash": {"S": digest},
            "tweet_id": {"S": tweet.tweet_id},
            "response": {"S": json.dumps(tweet_to_json(tweet), separators=(",", ":"), ensure_ascii=False)},
            "expiration": {"N": str(now_s + self._ttl_seconds)},
        }
        items = [
            {
                "Put": {
                    "TableName": self._idempotency,
                    "Item": record,
                    # An expired record that TTL has not swept yet counts as absent, so a key's
                    # lifetime is exactly the TTL rather than "TTL plus however long the sweep takes".
                    "ConditionExpression": "attribute_not_exists(id) OR expiration < :now",
                    "ExpressionAttributeValues": {":now": {"N": str(now_s)}},
                }
            },
            {
                "Put": {
                    "TableName": self._tweets,
                    "Item": tweet.to_item(),
                    "ConditionExpression": "attribute_not_exists(tweet_id)",
                }
            },
        ]
        try:
            self._dynamodb.transact_write_items(TransactItems=items)
        except ClientError as error:
            codes = cancellation_codes(error)
            # The record's condition failed: this key was used before. Whatever else failed with it
            # (the tweet's own condition fails too when the SDK resent a transaction that had landed
            # before its answer was lost), the record decides: same request, same answer.
            if codes is None or not codes or codes[0] != CONDITIONAL_CHECK_FAILED:
                raise
            replayed = self._replay(record_id, digest, idempotency_key, now_s)
            if replayed is None:
                # The record existed at the check and is gone now: only an expiry sweep does that,
                # so a retry will go through.
                raise ServiceUnavailable(
                    "The idempotency record for this request changed while it was being written; "
                    "retry the request with the same Idempotency-Key."
                ) from error
            # Our own write, landed on an earlier attempt of this very call: it was created now.
            return replayed, replayed.tweet_id == tweet.tweet_id
        return tweet, True

    def _replay(self, record_id: str, digest: str, key: str, now_s: int) -> Tweet | None:
        """The tweet an earlier request with this key made (None if none); Conflict if its body differed."""
        response = self._dynamodb.get_item(
            TableName=self._idempotency, Key={"id": {"S": record_id}}, ConsistentRead=True
        )
        record = response.get("Item")
        if record is None or int(record["expiration"]["N"]) < now_s:
            return None
        if record["request_hash"]["S"] != digest:
            raise Conflict(
                f"Idempotency-Key {key!r} was already used with a different request body. Use a new "
                "key for a new tweet; reuse a key only to retry exactly the same request.",
                field="Idempotency-Key",
            )
        return tweet_from_json(json.loads(record["response"]["S"]))

    # -- read and delete ---------------------------------------------------------------------------

    def get(self, tweet_id: str) -> Tweet:
        """The tweet and its like count, read eventually consistent; NotFound when missing or deleted.

        A retweet comes with its original as it is now, and is gone (NotFound) once its original
        is; a reply says whether the tweet it answers is deleted.
        """
        tweet = self._read_with_likes(tweet_id, consistent=False)
        if tweet is None or tweet.deleted:
            raise self._not_found(tweet_id, "id")
        return self._shown(tweet, field="id", consistent=False)

    def _shown(self, tweet: Tweet, *, field: str, consistent: bool) -> Tweet:
        """`tweet` with what it shows of others: a retweet's original, a reply's parent's state."""
        if tweet.retweet_of:
            return replace(
                tweet, original=self._load_live(tweet.retweet_of, field=field, consistent=consistent)
            )
        if tweet.reply_to:
            parent = self._dynamodb.get_item(
                TableName=self._tweets,
                Key={"tweet_id": {"S": tweet.reply_to}},
                ConsistentRead=consistent,
                ProjectionExpression="deleted",
            ).get("Item")
            return replace(
                tweet, reply_to_deleted=parent is None or parent.get("deleted", {}).get("BOOL", False)
            )
        return tweet

    def delete(self, caller: str, tweet_id: str) -> None:
        """Turn the caller's tweet into a tombstone (text and media removed); deleting twice is fine."""
        try:
            self._dynamodb.update_item(
                TableName=self._tweets,
                Key={"tweet_id": {"S": tweet_id}},
                UpdateExpression="SET deleted = :true REMOVE #text, media_ids, media_versions",
                ConditionExpression="author_id = :caller AND attribute_exists(tweet_id)",
                ExpressionAttributeNames={"#text": "text"},
                ExpressionAttributeValues={":true": {"BOOL": True}, ":caller": {"S": caller}},
                # The old item tells "no such tweet" from "someone else's" without a second read.
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            if not error.response.get("Item"):
                raise self._not_found(tweet_id, "id") from None
            raise Forbidden(
                f"Tweet {tweet_id} belongs to another user; you can delete only your own tweets.",
                field="id",
            ) from None

    # -- retweet -------------------------------------------------------------------------------------

    def retweet(self, caller: str, tweet_id: str, idempotency_key: str | None = None) -> tuple[Tweet, bool]:
        """Retweet a tweet (a retweet's original, if given a retweet) once per user; a repeat returns it."""
        # idempotency_key is accepted so every write handler looks alike, but the per-user marker
        # item already makes a retweet unique: a retry finds the first one.
        del idempotency_key
        target = self._load_live(tweet_id, field="id", consistent=False)
        original_id = target.retweet_of or target.tweet_id
        original = self._load_live(original_id, field="id", consistent=False) if target.retweet_of else target
        marker_key = {"pk": {"S": user_pk(caller)}, "sk": {"S": retweet_sk(original_id)}}
        stale: str | None = None  # the ID in a marker whose retweet was deleted, to be replaced
        for _ in range(MAX_RETWEET_ATTEMPTS):
            # No text of its own: a retweet shows its original, so a deleted original shows nowhere.
            tweet = self._new_tweet(self._clock_ms(), caller, "", retweet_of=original_id)
            marker_put: dict[str, Any] = {
                "TableName": self._graph,
                "Item": {**marker_key, "retweet_id": {"S": tweet.tweet_id}},
                "ConditionExpression": "attribute_not_exists(pk)",
            }
            if stale is not None:
                # Retweeting again after deleting the retweet: take over the marker, but only if
                # nobody else did in the meantime.
                marker_put["ConditionExpression"] = "retweet_id = :stale"
                marker_put["ExpressionAttributeValues"] = {":stale": {"S": stale}}
            items = [
                {"Put": marker_put},
                {
                    "Put": {
                        "TableName": self._tweets,
                        "Item": tweet.to_item(),
                        "ConditionExpression": "attribute_not_exists(tweet_id)",
                    }
                },
                self._live_tweet_check(original_id),
            ]
            try:
                self._dynamodb.transact_write_items(TransactItems=items)
            except ClientError as error:
                codes = cancellation_codes(error)
                if codes is None:
                    raise
                if len(codes) > 2 and codes[2] == CONDITIONAL_CHECK_FAILED:
                    raise self._not_found(tweet_id, "id") from None
                if not only_condition_failures(codes, 0):
                    raise
                existing, stale = self._existing_retweet(marker_key)
                if existing is not None:
                    return replace(existing, original=original), False
                continue
            return replace(tweet, original=original), True
        raise ServiceUnavailable(
            f"Retweeting {tweet_id} kept conflicting with another retweet of it; retry the request."
        )

    def _existing_retweet(self, marker_key: dict[str, Any]) -> tuple[Tweet | None, str | None]:
        """The live retweet a marker points at, or (None, its ID) when that retweet was deleted."""
        marker = self._dynamodb.get_item(TableName=self._graph, Key=marker_key, ConsistentRead=True).get(
            "Item"
        )
        if marker is None:
            return None, None
        retweet_id = marker["retweet_id"]["S"]
        existing = self._read_with_likes(retweet_id, consistent=True)
        if existing is None or existing.deleted:
            return None, retweet_id
        return existing, None

    # -- likes ---------------------------------------------------------------------------------------

    def like(self, caller: str, tweet_id: str) -> bool:
        """Like a tweet; False when the caller already liked it (nothing changed). Counted later, by
        each region's count of the likes it holds."""
        like_put = {
            "Put": {
                "TableName": self._graph,
                "Item": self._like_key(caller, tweet_id),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        return self._change_like(like_put, tweet_id)

    def unlike(self, caller: str, tweet_id: str) -> bool:
        """Take a like back; False when the caller had not liked the tweet (nothing changed)."""
        # Only an existing like is taken back, so the count goes down only for a like it counted.
        like_delete = {
            "Delete": {
                "TableName": self._graph,
                "Key": self._like_key(caller, tweet_id),
                "ConditionExpression": "attribute_exists(pk)",
            }
        }
        return self._change_like(like_delete, tweet_id)

    @staticmethod
    def _like_key(caller: str, tweet_id: str) -> dict[str, dict[str, str]]:
        return {"pk": {"S": tweet_pk(tweet_id)}, "sk": {"S": like_sk(caller)}}

    def _live_tweet_check(self, tweet_id: str) -> dict[str, Any]:
        """A transaction item that holds only while the tweet exists and is not deleted."""
        return {
            "ConditionCheck": {
                "TableName": self._tweets,
                "Key": {"tweet_id": {"S": tweet_id}},
                "ConditionExpression": _LIVE_TWEET,
                "ExpressionAttributeValues": {":false": _FALSE},
            }
        }

    def _change_like(self, like_item: dict[str, Any], tweet_id: str) -> bool:
        # The edge and a check that the tweet is live: the tweet item itself is only read, so a like
        # racing a delete in another region cannot overwrite the tombstone.
        try:
            self._dynamodb.transact_write_items(TransactItems=[like_item, self._live_tweet_check(tweet_id)])
        except ClientError as error:
            codes = cancellation_codes(error)
            if codes is None:
                raise
            if len(codes) > 1 and codes[1] == CONDITIONAL_CHECK_FAILED:
                raise self._not_found(tweet_id, "id") from None
            if only_condition_failures(codes, 0):
                return False
            raise
        return True

    # -- helpers -------------------------------------------------------------------------------------

    def _new_tweet(self, now_ms: int, author: str, text: str, **optional: Any) -> Tweet:
        tweet_id = new_ulid(now_ms, self._random_bytes(RANDOM_BYTES))
        return Tweet(
            tweet_id=tweet_id,
            author_id=author,
            created_at=Tweet.created_at_of(tweet_id),
            text=text,
            **optional,
        )

    def _load_live(self, tweet_id: str, *, field: str, consistent: bool) -> Tweet:
        response = self._dynamodb.get_item(
            TableName=self._tweets, Key={"tweet_id": {"S": tweet_id}}, ConsistentRead=consistent
        )
        item = response.get("Item")
        if item is None:
            raise self._not_found(tweet_id, field)
        tweet = Tweet.from_item(item)
        if tweet.deleted:
            raise self._not_found(tweet_id, field)
        return tweet

    def _read_with_likes(self, tweet_id: str, *, consistent: bool) -> Tweet | None:
        """The tweet item (None if missing) with this region's count of its likes, in one BatchGetItem."""
        tweet_key = {"tweet_id": {"S": tweet_id}}
        request: dict[str, Any] = {
            self._tweets: {"Keys": [tweet_key], "ConsistentRead": consistent},
            self._counts: {"Keys": [Counts.likes_key(tweet_id)], "ConsistentRead": consistent},
        }
        try:
            found = batch_get(self._dynamodb, request, self._batch_get_retries)
        except BatchIncomplete:
            raise ServiceUnavailable(f"Reading tweet {tweet_id} was throttled; retry the request.") from None
        if not found[self._tweets]:
            return None
        tweet = Tweet.from_item(found[self._tweets][0])
        counter = found[self._counts][0] if found[self._counts] else None
        return replace(tweet, like_count=value_of(counter))

    @staticmethod
    def _not_found(tweet_id: str, field: str) -> NotFound:
        return NotFound(f"No tweet {tweet_id} exists (it may have been deleted); check the ID.", field=field)
