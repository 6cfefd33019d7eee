"""Fan-out on write: one tweets-table stream record becomes entries in this region's Timelines table.

Entry keys are deterministic (user, created_at#tweet_id), so a redelivered or re-processed
record rewrites or re-deletes the same items and never adds a duplicate. Authors with more
followers than the threshold are "celebrities": only their own timeline gets the entry and
readers merge their tweets on read (aviary.timeline_store), so one post has a bounded cost.

Each timeline is capped at a maximum number of entries. Trimming after every write would cost one
Query per recipient per tweet, so a deterministic sample of (recipient, tweet) pairs trims instead:
about one write in `sample_every` reads that user's keys and deletes whatever lies beyond the cap.
Between two sampled writes a timeline may run over the cap by a few dozen entries, never without bound.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

from aviary.batches import BATCH_WRITE_MAX_ITEMS, UnprocessedRetries, batch_write
from aviary.followers import FollowerDirectory
from aviary.keys import TIMELINE_ENTRY_ATTRIBUTES, timeline_entry_key
from aviary.timeline_settings import DEFAULT_RETENTION_DAYS
from aviary.tombstones import Tombstones
from aviary.tweets import Tweet

# One trim reads about max_entries keys (~6 RCU at 800): sampling 1 write in 128 keeps that near 5 %
# of a fan-out's write cost, and a timeline at most ~128 entries over its cap between trims.
DEFAULT_TRIM_SAMPLE_EVERY = 128
DEFAULT_MAX_DELETES_PER_TRIM = 500
SECONDS_PER_DAY = 86_400
_REQUIRED_TWEET_ATTRIBUTES = ("tweet_id", "author_id", "created_at")

AttributeMap = dict[str, dict[str, Any]]


def expires_at(created_at: str, retention_days: int) -> int:
    """Epoch seconds at which DynamoDB TTL may drop an entry: the tweet's time plus the retention."""
    # created_at is always UTC with a trailing Z, which fromisoformat reads as +00:00 (Python 3.11+).
    return int(datetime.fromisoformat(created_at).timestamp()) + retention_days * SECONDS_PER_DAY


def entry_key(user_id: str, tweet: Tweet) -> AttributeMap:
    """The primary key of `tweet`'s entry in `user_id`'s timeline."""
    return {
        "user_id": {"S": user_id},
        "entry_key": {"S": timeline_entry_key(tweet.created_at, tweet.tweet_id)},
    }


def entry_attributes(
    tweet: Tweet, retention_days: int = DEFAULT_RETENTION_DAYS, *, original: Tweet | None = None
) -> AttributeMap:
    """Everything of an entry except its key: the attributes the read path projects, and the TTL.
    A retweet's entry carries what its original shows; the entry goes when the original does."""
    # Tweet.to_item already leaves out absent optionals and stores media_ids as a list.
    source = tweet.to_item()
    attributes = {name: source[name] for name in TIMELINE_ENTRY_ATTRIBUTES if name in source}
    if original is not None:
        attributes["original"] = original.summary_item()
    attributes["expires_at"] = {"N": str(expires_at(tweet.created_at, retention_days))}
    return attributes


def timeline_entry(
    user_id: str, tweet: Tweet, retention_days: int = DEFAULT_RETENTION_DAYS, *, original: Tweet | None = None
) -> AttributeMap:
    """The complete Timelines item for `tweet` in `user_id`'s timeline."""
    return {**entry_key(user_id, tweet), **entry_attributes(tweet, retention_days, original=original)}


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


class TimelineWriter:
    """Puts and deletes timeline entries with BatchWriteItem, 25 at a time, sending again what DynamoDB
    leaves unprocessed (aviary.batches). What stays unprocessed, or a call botocore's retries could not
    get through, fails the stream record, and the event source retries it."""

    def __init__(
        self,
        dynamodb_client: Any,
        timelines_table: str,
        *,
        sleep: Callable[[float], None],
        max_attempts: int = 5,
        base_delay: float = 0.05,
        max_delay: float = 1.0,
        rng: random.Random | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {max_attempts}")
        self.dynamodb = dynamodb_client
        self.timelines_table = timelines_table
        self.retries = UnprocessedRetries(
            attempts=max_attempts,
            base_delay=base_delay,
            max_delay=max_delay,
            sleep=sleep,
            rng=rng or random.Random(),
        )

    def put_entries(self, entries: Iterable[AttributeMap]) -> int:
        """Write every entry (consumed lazily, 25 at a time); returns how many were written."""
        return self._write({"PutRequest": {"Item": entry}} for entry in entries)

    def delete_entries(self, keys: Iterable[AttributeMap]) -> int:
        """Delete every entry by key (absent ones are no-ops); returns how many keys were sent."""
        return self._write({"DeleteRequest": {"Key": key}} for key in keys)

    def _write(self, requests: Iterable[dict[str, Any]]) -> int:
        written = 0
        for chunk in _chunks(requests, BATCH_WRITE_MAX_ITEMS):
            batch_write(self.dynamodb, self.timelines_table, chunk, self.retries)
            written += len(chunk)
        return written


def sample_hash(user_id: str, tweet_id: str) -> int:
    """A stable, evenly spread hash of a (user, tweet) pair; crc32 would sample in clumps."""
    digest = hashlib.blake2b(f"{user_id}#{tweet_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class TimelineTrimmer:
    """Keeps each user's newest `max_entries` timeline entries, deleting older ones on a sample of writes."""

    def __init__(
        self,
        dynamodb_client: Any,
        timelines_table: str,
        max_entries: int,
        *,
        sample_every: int = DEFAULT_TRIM_SAMPLE_EVERY,
        max_deletes_per_trim: int = DEFAULT_MAX_DELETES_PER_TRIM,
        writer: TimelineWriter,
    ) -> None:
        for name, value in (
            ("max_entries", max_entries),
            ("sample_every", sample_every),
            ("max_deletes_per_trim", max_deletes_per_trim),
        ):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, not {value}")
        self.dynamodb = dynamodb_client
        self.timelines_table = timelines_table
        self.max_entries = max_entries
        self.sample_every = sample_every
        self.max_deletes_per_trim = max_deletes_per_trim
        self.writer = writer

    def should_trim(self, user_id: str, tweet_id: str) -> bool:
        """Whether writing `tweet_id` into `user_id`'s timeline trims it: about one pair in `sample_every`."""
        # A hash of the pair, not a random draw: a redelivered record trims exactly where it did before,
        # and every user is sampled at the same rate whatever order the tweets arrive in.
        return sample_hash(user_id, tweet_id) % self.sample_every == 0

    def trim(self, user_id: str) -> int:
        """Delete `user_id`'s entries beyond the newest `max_entries`; returns how many were deleted.

        At most `max_deletes_per_trim` go per call, those just past the cap: the read stays bounded and
        any older backlog (a timeline from before the cap, say) is left to the next sampled trims.
        """
        return self.writer.delete_entries(self._excess_keys(user_id))

    def _excess_keys(self, user_id: str) -> list[AttributeMap]:
        # Keys only, newest first, and never more items than the cap plus one trim's deletes.
        wanted = self.max_entries + self.max_deletes_per_trim
        request: dict[str, Any] = {
            "TableName": self.timelines_table,
            "KeyConditionExpression": "#user = :user",
            "ExpressionAttributeNames": {"#user": "user_id", "#entry": "entry_key"},
            "ExpressionAttributeValues": {":user": {"S": user_id}},
            "ProjectionExpression": "#user, #entry",
            "ScanIndexForward": False,
            # A view a moment stale only moves the boundary by the entries written or deleted in that
            # moment (usually keeping a few more); nothing here needs to be exact.
            "ConsistentRead": False,
        }
        seen = 0
        excess: list[AttributeMap] = []
        while seen < wanted:
            response = self.dynamodb.query(**request, Limit=wanted - seen)
            for item in response.get("Items", []):
                if seen >= self.max_entries:
                    excess.append({"user_id": item["user_id"], "entry_key": item["entry_key"]})
                seen += 1
            if "LastEvaluatedKey" not in response:
                break
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return excess[: self.max_deletes_per_trim]


@dataclass(frozen=True)
class FanoutResult:
    """What one stream record did: action is "insert", "delete" or "ignore"."""

    action: str
    written: int = 0
    deleted: int = 0
    celebrity: bool = False
    trimmed: int = 0  # older entries deleted to keep the recipients' timelines at their cap
    retweets_buried: int = 0  # retweets made tombstones because their original is deleted


IGNORED = FanoutResult("ignore")


def _is_deleted(image: AttributeMap) -> bool:
    return image.get("deleted", {}).get("BOOL") is True


def _tweet(image: AttributeMap | None) -> Tweet | None:
    """The tweet in a stream image, or None for an item no timeline can place (the read path skips those)."""
    if not image or not all("S" in image.get(name, {}) for name in _REQUIRED_TWEET_ATTRIBUTES):
        return None
    return Tweet.from_item(image)


class OriginalNotHereYet(Exception):
    """A retweet arrived before its original: its record fails, and is retried until the original is
    here (burying it would delete a retweet whose original is live)."""


class LiveTweets:
    """Whether a tweet is still live: one strongly consistent read of its item in this region. Also
    makes tombstones of the retweets that must go with a deleted original."""

    def __init__(self, dynamodb_client: Any, tweets_table: str) -> None:
        self.dynamodb = dynamodb_client
        self.tweets_table = tweets_table
        self.tombstones = Tombstones(dynamodb_client, tweets_table)

    def is_live(self, tweet_id: str) -> bool:
        item = self.dynamodb.get_item(
            TableName=self.tweets_table,
            Key={"tweet_id": {"S": tweet_id}},
            ConsistentRead=True,
            ProjectionExpression="deleted",
        ).get("Item")
        return item is not None and not _is_deleted(item)

    def original(self, tweet_id: str) -> Tweet | None:
        """A retweet's original if it is live here, None if it is deleted; OriginalNotHereYet if this
        region has not received it (global tables do not replicate items in the order written)."""
        item = self.dynamodb.get_item(
            TableName=self.tweets_table, Key={"tweet_id": {"S": tweet_id}}, ConsistentRead=True
        ).get("Item")
        if item is None:
            raise OriginalNotHereYet(f"retweeted tweet {tweet_id} has not reached this region yet")
        return None if _is_deleted(item) else _tweet(item)

    def bury_retweets_of(self, original_id: str) -> int:
        """Every live retweet of a deleted tweet becomes a tombstone; their own records then take
        them out of timelines, in every region, as any delete does."""
        return sum(
            self.tombstones.bury(retweet, deleted_with=original_id)
            for retweet in self.tombstones.retweets_of(original_id)
        )


class FanoutService:
    """Applies tweets-table stream records (Lambda's plain dict shape) to the Timelines table."""

    def __init__(
        self,
        followers: FollowerDirectory,
        writer: TimelineWriter,
        celebrity_follower_threshold: int,
        *,
        retention_days: int = DEFAULT_RETENTION_DAYS,
        trimmer: TimelineTrimmer | None = None,
        live_tweets: LiveTweets | None = None,
    ) -> None:
        self.followers = followers
        self.live_tweets = live_tweets
        self.writer = writer
        self.celebrity_follower_threshold = celebrity_follower_threshold
        self.retention_days = retention_days
        self.trimmer = trimmer

    def handle(self, record: dict[str, Any]) -> FanoutResult:
        """Write, delete or ignore the timeline entries of one stream record."""
        event = record.get("eventName")
        images = record.get("dynamodb", {})
        new, old = images.get("NewImage"), images.get("OldImage")
        if event == "INSERT" and new is not None and not _is_deleted(new):
            tweet = _tweet(new)
            return self._insert(tweet) if tweet else IGNORED
        # A tombstone appearing, or the item going away while it was still live. A tombstone
        # removed later needs nothing: its entries went when it became one.
        became_tombstone = event == "MODIFY" and new is not None and _is_deleted(new)
        if (became_tombstone or event == "REMOVE") and old is not None and not _is_deleted(old):
            tweet = _tweet(old)
            return self._delete(tweet) if tweet else IGNORED
        # Like counts and other edits leave timeline entries as they are.
        return IGNORED

    def _audience(self, author: str) -> tuple[bool, Iterator[str]]:
        """Whether `author` is a celebrity, and whose timelines get the entry (the author's first)."""
        celebrity = self.followers.follower_count(author) > self.celebrity_follower_threshold
        if celebrity:
            return True, iter((author,))

        def everyone() -> Iterator[str]:
            yield author
            # A self-follow would put one key twice into a batch, which DynamoDB rejects.
            yield from (handle for handle in self.followers.followers(author) if handle != author)

        return False, everyone()

    def _insert(self, tweet: Tweet) -> FanoutResult:
        original = None
        if tweet.retweet_of and self.live_tweets is not None:
            original = self.live_tweets.original(tweet.retweet_of)
            if original is None:
                # Its original was deleted before this retweet reached this region (or before its
                # retweets were looked for): the retweet goes with it, from here everywhere.
                buried = self.live_tweets.tombstones.bury(tweet.tweet_id, deleted_with=tweet.retweet_of)
                return FanoutResult("ignore", retweets_buried=int(buried))
        celebrity, users = self._audience(tweet.author_id)
        shared = entry_attributes(tweet, self.retention_days, original=original)
        trimmer = self.trimmer
        sampled: list[str] = []

        def entries() -> Iterator[AttributeMap]:
            for user in users:
                if trimmer is not None and trimmer.should_trim(user, tweet.tweet_id):
                    sampled.append(user)
                yield {**entry_key(user, tweet), **shared}

        written = self.writer.put_entries(entries())
        if self.live_tweets is not None and not self.live_tweets.is_live(tweet.tweet_id):
            # The tweet was deleted before these entries went in: its tombstone's fan-out may already
            # have run (a redelivered or redriven insert arrives after it), so take them out again.
            removed = self._delete(tweet)
            return FanoutResult("insert", written=written, deleted=removed.deleted, celebrity=celebrity)
        # Only once every entry is in, so the new one counts among the newest. A failed trim fails the
        # record: its redelivery rewrites the same entries and samples the same recipients again.
        trimmed = sum(trimmer.trim(user) for user in sampled) if trimmer is not None else 0
        return FanoutResult("insert", written=written, celebrity=celebrity, trimmed=trimmed)

    def _delete(self, tweet: Tweet) -> FanoutResult:
        celebrity, users = self._audience(tweet.author_id)
        deleted = self.writer.delete_entries(entry_key(user, tweet) for user in users)
        buried = 0
        if not tweet.retweet_of and self.live_tweets is not None:
            buried = self.live_tweets.bury_retweets_of(tweet.tweet_id)
        return FanoutResult("delete", deleted=deleted, celebrity=celebrity, retweets_buried=buried)
