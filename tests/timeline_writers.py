"""What the tests of the timeline writers share (the fan-out, follow backfill and removal, repair,
and their handlers): moto tables, tweets, stream records, faults, and the fixtures over them.

tests/conftest.py makes the fixtures available to every test module."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from aviary.clients import AWS_CONFIG
from aviary.counts import Counts
from aviary.fanout import (
    FanoutService,
    LiveTweets,
    TimelineTrimmer,
    TimelineWriter,
    sample_hash,
    timeline_entry,
)
from aviary.followers import FollowerDirectory
from aviary.ids import new_ulid
from aviary.keys import follower_sk, follows_sk, user_pk
from aviary.media_urls import MediaUrls
from aviary.schema import COUNTS, SOCIAL_GRAPH, TIMELINES, TWEETS
from aviary.tweets import Tweet
from tools.local_aws.tables import create_tables

REGION = "us-east-1"


STREAM_ARN = f"arn:aws:dynamodb:{REGION}:123456789012:table/aviary-tweets/stream/2026-11-21T00:00:00.000"


BASE_MS = 1_795_000_000_000  # November 2026


NO_CELEBRITIES = 1_000_000


BASE_URL = "https://media.aviary.example.com"


URLS = MediaUrls(BASE_URL)


def set_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """On top of tests/conftest.py's fake AWS environment."""
    # boto3 1.44 sends streams calls to account endpoints that moto does not intercept.
    monkeypatch.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")


def new_tables() -> tuple[Any, dict[str, str]]:
    """A client and the tweets, social-graph, timelines and counts tables (role -> name), in mock_aws."""
    client = boto3.client("dynamodb", region_name=REGION, config=AWS_CONFIG)
    return client, create_tables(client, [TWEETS, SOCIAL_GRAPH, TIMELINES, COUNTS])


def make_tweet(n: int, author: str = "alice", **fields: Any) -> Tweet:
    tweet_id = new_ulid(BASE_MS + n * 1000, n.to_bytes(10, "big"))
    return Tweet(
        tweet_id=tweet_id,
        author_id=author,
        created_at=Tweet.created_at_of(tweet_id),
        **{"text": f"tweet {n} by {author}", **fields},
    )


def tombstone(tweet: Tweet) -> Tweet:
    """What TweetService.delete leaves: deleted, text and media removed."""
    return Tweet(
        tweet_id=tweet.tweet_id,
        author_id=tweet.author_id,
        created_at=tweet.created_at,
        text="",
        reply_to=tweet.reply_to,
        retweet_of=tweet.retweet_of,
        deleted=True,
        like_count=tweet.like_count,
    )


def stream_record(
    event_name: str, *, new: Tweet | None = None, old: Tweet | None = None, sequence: str = "100"
) -> dict[str, Any]:
    """One record in the plain dict shape Lambda delivers for a DynamoDB stream."""
    tweet = new or old
    assert tweet is not None
    images: dict[str, Any] = {
        "ApproximateCreationDateTime": 1_795_000_000,
        "Keys": {"tweet_id": {"S": tweet.tweet_id}},
        "SequenceNumber": sequence,
        "SizeBytes": 200,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if new is not None:
        item = new.to_item()
        if new.deleted:
            item.pop("text", None)  # a tombstone carries no text at all
        images["NewImage"] = item
    if old is not None:
        images["OldImage"] = old.to_item()
    return {
        "eventID": f"event-{sequence}",
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "dynamodb": images,
        "eventSourceARN": STREAM_ARN,
    }


def seed_followers(client: Any, tables: dict[str, str], author: str, followers: Iterable[str]) -> int:
    """Both edges of every follow, as aviary.social_graph stores them, and the author's follower count
    as the region's graph stream would have counted it (aviary.counts)."""
    table = tables["social-graph"]
    handles = list(followers)
    requests = []
    for handle in handles:
        requests.append(
            {"PutRequest": {"Item": {"pk": {"S": user_pk(author)}, "sk": {"S": follower_sk(handle)}}}}
        )
        requests.append(
            {"PutRequest": {"Item": {"pk": {"S": user_pk(handle)}, "sk": {"S": follows_sk(author)}}}}
        )
    for start in range(0, len(requests), 25):
        client.batch_write_item(RequestItems={table: requests[start : start + 25]})
    client.update_item(
        TableName=tables["counts"],
        Key=Counts.followers_key(author),
        UpdateExpression="ADD n :n",
        ExpressionAttributeValues={":n": {"N": str(len(handles))}},
    )
    return len(handles)


def all_entries(client: Any, table: str) -> list[dict[str, Any]]:
    """Every item of the Timelines table, sorted by key."""
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        response = client.scan(**request)
        items.extend(response["Items"])
        if "LastEvaluatedKey" not in response:
            break
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
    return sorted(items, key=lambda item: (item["user_id"]["S"], item["entry_key"]["S"]))


def expected_entries(tweets_by_user: dict[str, list[Tweet]]) -> list[dict[str, Any]]:
    items = [timeline_entry(user, tweet) for user, tweets in tweets_by_user.items() for tweet in tweets]
    return sorted(items, key=lambda item: (item["user_id"]["S"], item["entry_key"]["S"]))


def throttling_error(operation: str = "BatchWriteItem") -> ClientError:
    return ClientError(
        {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, operation
    )


def half_processed(client: Any, times: int) -> Callable[[str, dict[str, Any]], Any]:
    """A fault: the first `times` BatchWriteItem calls apply half their requests and return the rest."""
    remaining = [times]

    def fault(name: str, kwargs: dict[str, Any]) -> Any:
        if name != "batch_write_item" or remaining[0] == 0:
            return None
        remaining[0] -= 1
        ((table, requests),) = kwargs["RequestItems"].items()
        done, left = requests[: len(requests) // 2], requests[len(requests) // 2 :]
        if done:
            client.batch_write_item(RequestItems={table: done})
        return {"UnprocessedItems": {table: left}}

    return fault


def never_processed(name: str, kwargs: dict[str, Any]) -> Any:
    """A fault: every BatchWriteItem call applies nothing and returns all its requests as unprocessed."""
    return {"UnprocessedItems": kwargs["RequestItems"]} if name == "batch_write_item" else None


def throttled(times: int) -> Callable[[str, dict[str, Any]], Any]:
    """A fault: the first `times` BatchWriteItem calls fail with ProvisionedThroughputExceeded, as they
    reach the code once botocore's own retries are spent."""
    remaining = [times]

    def fault(name: str, _kwargs: dict[str, Any]) -> Any:
        if name == "batch_write_item" and remaining[0] > 0:
            remaining[0] -= 1
            raise throttling_error()
        return None

    return fault


def build_service(
    client: Any,
    tables: dict[str, str],
    *,
    threshold: int = NO_CELEBRITIES,
    sleeps: list[float] | None = None,
    max_entries: int | None = None,
    live_tweets: LiveTweets | None = None,
    **trim_options: int,
) -> FanoutService:
    """The fan-out under test; with `max_entries` it trims timelines to that cap (`trim_options` as given)."""
    recorded = sleeps if sleeps is not None else []
    writer = TimelineWriter(client, tables["timelines"], sleep=recorded.append, rng=random.Random(7))
    trimmer = None
    if max_entries is not None:
        trimmer = TimelineTrimmer(client, tables["timelines"], max_entries, writer=writer, **trim_options)
    return FanoutService(
        FollowerDirectory(client, tables["social-graph"], tables["counts"]),
        writer,
        threshold,
        trimmer=trimmer,
        live_tweets=live_tweets,
    )


def store_tweets(client: Any, tables: dict[str, str], *tweets: Tweet) -> None:
    """The tweets table as the stream records describe it after they happened."""
    for tweet in tweets:
        client.put_item(TableName=tables["tweets"], Item=tweet.to_item())


def retweet_of(original: Tweet, n: int, by: str = "bob") -> Tweet:
    """What TweetService.retweet stores: no text or media of its own, only the original's ID."""
    return make_tweet(n, author=by, text="", retweet_of=original.tweet_id)


SAMPLE_EVERY = 128  # TimelineTrimmer's default


def is_sampled(user: str, tweet: Tweet, sample_every: int = SAMPLE_EVERY) -> bool:
    return sample_hash(user, tweet.tweet_id) % sample_every == 0


def first_tweet(start: int, author: str, wanted: Callable[[Tweet], bool]) -> Tweet:
    """The first of make_tweet(start), make_tweet(start + 1), ... by `author` that `wanted` accepts."""
    for n in range(start, start + 100_000):
        tweet = make_tweet(n, author=author)
        if wanted(tweet):
            return tweet
    raise AssertionError("no such tweet")


def fill_timeline(client: Any, tables: dict[str, str], user: str, count: int) -> list[Tweet]:
    """`count` entries in `user`'s timeline, oldest first, written directly (no fan-out, no trim)."""
    tweets = [make_tweet(n, author="carol") for n in range(1, count + 1)]
    writer = TimelineWriter(client, tables["timelines"], sleep=lambda _s: None)
    writer.put_entries(timeline_entry(user, tweet) for tweet in tweets)
    return tweets


def timeline_of(client: Any, tables: dict[str, str], user: str) -> list[str]:
    """The tweet IDs in `user`'s timeline, oldest first."""
    return [
        item["tweet_id"]["S"]
        for item in all_entries(client, tables["timelines"])
        if item["user_id"]["S"] == user
    ]


def ids(tweets: Iterable[Tweet]) -> list[str]:
    return [tweet.tweet_id for tweet in tweets]


@pytest.fixture
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the timeline writers' tests run in (modules ask for it with pytestmark)."""
    set_aws_environment(monkeypatch)


@pytest.fixture
def dynamo() -> Iterator[tuple[Any, dict[str, str]]]:
    """A client and the tweets, social-graph, timelines and counts tables, in mock_aws."""
    with mock_aws():
        yield new_tables()
