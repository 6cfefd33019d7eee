"""Follows reaching timelines (aviary.follow_timelines) and timeline repair (aviary.timeline_repair).

On moto: each step by example, then properties over interleavings of follow, unfollow, post and
delete with their stream records delivered in any order, twice, or (for repair) never.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from aviary.counts import Counts
from aviary.fanout import LiveTweets, TimelineWriter, timeline_entry
from aviary.follow_timelines import FollowResult, FollowTimelines, follow_edge
from aviary.keys import follower_sk, follows_sk, user_pk
from aviary.naming import table_name
from aviary.schema import COUNTS, SOCIAL_GRAPH, TIMELINES, TWEETS
from aviary.social_graph import SocialGraph
from aviary.timeline_repair import TimelineRepair
from aviary.timeline_settings import TimelineSettings
from aviary.tweets import Tweet
from tests.timeline_writers import (
    BASE_MS,
    NO_CELEBRITIES,
    all_entries,
    build_service,
    make_tweet,
    new_tables,
    retweet_of,
    set_aws_environment,
    store_tweets,
    stream_record,
    tombstone,
)
from tests.two_regions import REGIONS, TwoRegions

pytestmark = pytest.mark.usefixtures("aws_environment")

NOW = BASE_MS / 1000 + 3600  # an hour after the tweets' times: all within the retention


def settings_of(
    tables: dict[str, str], *, threshold: int = NO_CELEBRITIES, cap: int = 800
) -> TimelineSettings:
    return TimelineSettings(
        timelines_table=tables["timelines"],
        tweets_table=tables["tweets"],
        social_graph_table=tables["social-graph"],
        counts_table=tables["counts"],
        celebrity_threshold=threshold,
        max_entries=cap,
    )


def follow_timelines(client: Any, tables: dict[str, str], **options: Any) -> FollowTimelines:
    return FollowTimelines(client, settings_of(tables, **options), sleep=lambda _s: None, clock=lambda: NOW)


def repairer(client: Any, tables: dict[str, str], **options: Any) -> TimelineRepair:
    return TimelineRepair(client, settings_of(tables, **options), sleep=lambda _s: None, clock=lambda: NOW)


def edge_record(event_name: str, follower: str, followee: str, *, side: str = "FOLLOWS") -> dict[str, Any]:
    """A social-graph stream record of one side of a follow edge."""
    if side == "FOLLOWS":
        keys = {"pk": {"S": user_pk(follower)}, "sk": {"S": follows_sk(followee)}}
    else:
        keys = {"pk": {"S": user_pk(followee)}, "sk": {"S": follower_sk(follower)}}
    images: dict[str, Any] = {"Keys": keys, "SequenceNumber": "1", "StreamViewType": "NEW_AND_OLD_IMAGES"}
    images["NewImage" if event_name == "INSERT" else "OldImage"] = dict(keys)
    return {"eventName": event_name, "eventSource": "aws:dynamodb", "dynamodb": images}


def timeline(client: Any, tables: dict[str, str], user: str) -> list[str]:
    """The tweet IDs in `user`'s timeline, newest first."""
    entries = [e for e in all_entries(client, tables["timelines"]) if e["user_id"]["S"] == user]
    return [e["tweet_id"]["S"] for e in reversed(entries)]


def set_follower_count(client: Any, tables: dict[str, str], user: str, n: int) -> None:
    client.put_item(TableName=tables["counts"], Item={**Counts.followers_key(user), "n": {"N": str(n)}})


# -- records -----------------------------------------------------------------------------------------


def test_only_the_follows_side_of_an_edge_is_a_follow():
    assert follow_edge(edge_record("INSERT", "bob", "alice")) == ("bob", "alice")
    assert follow_edge(edge_record("INSERT", "bob", "alice", side="FOLLOWER")) is None
    like = {"dynamodb": {"Keys": {"pk": {"S": "TWEET#01JD"}, "sk": {"S": "LIKE#bob"}}}}
    handle = {"dynamodb": {"Keys": {"pk": {"S": "HANDLE#bob"}, "sk": {"S": "HANDLE"}}}}
    assert follow_edge(like) is None and follow_edge(handle) is None and follow_edge({}) is None


def test_other_records_of_the_graph_write_nothing(dynamo):
    client, tables = dynamo
    service = follow_timelines(client, tables)
    assert service.handle(edge_record("INSERT", "bob", "alice", side="FOLLOWER")) == FollowResult("ignore")
    assert all_entries(client, tables["timelines"]) == []


# -- backfill and removal ------------------------------------------------------------------------------


def test_a_follow_brings_the_followees_newest_live_tweets_with_retweets_showing_their_originals(dynamo):
    client, tables = dynamo
    others = make_tweet(1, author="carol")
    kept = [make_tweet(n) for n in range(2, 6)]
    gone = make_tweet(6)
    retweet = retweet_of(others, 7, by="alice")
    orphan = retweet_of(make_tweet(8, author="dave"), 9, by="alice")  # its original was deleted
    store_tweets(
        client, tables, others, *kept, tombstone(gone), retweet, tombstone(make_tweet(8, author="dave"))
    )
    store_tweets(client, tables, orphan)
    SocialGraph(client, tables["social-graph"]).follow("bob", "alice")

    result = follow_timelines(client, tables).handle(edge_record("INSERT", "bob", "alice"))

    assert (result.action, result.written, result.deleted) == ("backfill", 5, 0)
    assert timeline(client, tables, "bob") == [retweet.tweet_id, *(t.tweet_id for t in reversed(kept))]
    [entry] = [e for e in all_entries(client, tables["timelines"]) if e["tweet_id"]["S"] == retweet.tweet_id]
    assert entry == timeline_entry("bob", retweet, original=others)
    assert entry["original"]["M"]["text"] == {"S": others.text}


def test_a_backfill_is_bounded_by_the_cap_and_the_timeline_trimmed_to_it(dynamo):
    client, tables = dynamo
    store_tweets(client, tables, *(make_tweet(n) for n in range(1, 9)))
    store_tweets(client, tables, *(make_tweet(n, author="carol") for n in range(20, 23)))
    graph = SocialGraph(client, tables["social-graph"])
    graph.follow("bob", "carol")
    follow_timelines(client, tables, cap=5).handle(edge_record("INSERT", "bob", "carol"))
    graph.follow("bob", "alice")

    result = follow_timelines(client, tables, cap=5).handle(edge_record("INSERT", "bob", "alice"))

    assert (result.written, result.trimmed) == (5, 3)
    newest = [make_tweet(n, author="carol").tweet_id for n in (22, 21, 20)]
    assert timeline(client, tables, "bob") == [*newest, make_tweet(8).tweet_id, make_tweet(7).tweet_id]


def test_a_celebrity_followee_gets_no_backfill(dynamo):
    client, tables = dynamo
    store_tweets(client, tables, make_tweet(1, author="star"))
    set_follower_count(client, tables, "star", 11)
    SocialGraph(client, tables["social-graph"]).follow("bob", "star")

    result = follow_timelines(client, tables, threshold=10).handle(edge_record("INSERT", "bob", "star"))

    assert result == FollowResult("backfill", celebrity=True)
    assert all_entries(client, tables["timelines"]) == []


def test_a_tweet_deleted_while_it_is_backfilled_leaves_no_entry(dynamo):
    client, tables = dynamo
    doomed = make_tweet(1)
    store_tweets(client, tables, doomed, make_tweet(2))
    SocialGraph(client, tables["social-graph"]).follow("bob", "alice")
    service = follow_timelines(client, tables)
    copied = service.recent.newest

    def deleted_meanwhile(author: str, count: int, *, since: str):
        read = copied(author, count, since=since)
        store_tweets(client, tables, tombstone(doomed))  # and its fan-out ran before our writes
        return read

    service.recent.newest = deleted_meanwhile
    result = service.handle(edge_record("INSERT", "bob", "alice"))

    assert (result.written, result.deleted) == (2, 1)
    assert timeline(client, tables, "bob") == [make_tweet(2).tweet_id]


def test_an_unfollow_removes_the_followees_tweets_and_retweets_and_nothing_else(dynamo):
    client, tables = dynamo
    own, carols = make_tweet(1, author="bob"), make_tweet(2, author="carol")
    alices = [make_tweet(3), retweet_of(carols, 4, by="alice")]
    writer = TimelineWriter(client, tables["timelines"], sleep=lambda _s: None)
    writer.put_entries(timeline_entry("bob", t) for t in (own, carols, *alices))

    result = follow_timelines(client, tables).handle(edge_record("REMOVE", "bob", "alice"))

    assert (result.action, result.deleted) == ("remove", 2)
    assert timeline(client, tables, "bob") == [carols.tweet_id, own.tweet_id]


@pytest.mark.parametrize(
    "deliveries",
    [
        ["INSERT", "REMOVE", "INSERT"],
        ["INSERT", "INSERT", "REMOVE", "INSERT", "REMOVE"],
        ["REMOVE", "INSERT", "INSERT"],  # reordered: the edge as it is now decides
    ],
)
def test_the_edge_as_it_is_now_decides_whatever_record_arrives(dynamo, deliveries):
    client, tables = dynamo
    store_tweets(client, tables, make_tweet(1), make_tweet(2))
    SocialGraph(client, tables["social-graph"]).follow("bob", "alice")
    service = follow_timelines(client, tables)
    for event_name in deliveries:
        service.handle(edge_record(event_name, "bob", "alice"))
    assert timeline(client, tables, "bob") == [make_tweet(2).tweet_id, make_tweet(1).tweet_id]


# -- repair ----------------------------------------------------------------------------------------------


def test_repair_puts_in_what_is_missing_takes_out_what_should_not_be_there_and_then_has_nothing_to_do(dynamo):
    client, tables = dynamo
    graph = SocialGraph(client, tables["social-graph"])
    graph.follow("bob", "alice")
    graph.follow("bob", "star")
    set_follower_count(client, tables, "star", 11)
    missing, stray, deleted = make_tweet(1), make_tweet(2, author="carol"), make_tweet(3)
    own, stars = make_tweet(4, author="bob"), make_tweet(5, author="star")
    store_tweets(client, tables, missing, stray, tombstone(deleted), own, stars)
    writer = TimelineWriter(client, tables["timelines"], sleep=lambda _s: None)
    writer.put_entries(timeline_entry("bob", t) for t in (stray, deleted, own))

    first = repairer(client, tables, threshold=10).repair("bob")
    second = repairer(client, tables, threshold=10).repair("bob")

    assert (first.expected, first.written, first.deleted) == (2, 1, 2)
    assert timeline(client, tables, "bob") == [own.tweet_id, missing.tweet_id]  # the star is merged on read
    assert (second.written, second.deleted) == (0, 0)
    assert 0 < second.calls <= first.calls


def test_repair_costs_a_query_per_followee_and_per_page_of_the_timeline(dynamo):
    client, tables = dynamo
    graph = SocialGraph(client, tables["social-graph"])
    for n, followee in enumerate(("alice", "carol", "dave"), start=1):
        graph.follow("bob", followee)
        store_tweets(client, tables, make_tweet(n, author=followee))
    result = repairer(client, tables).repair("bob")
    # follows (1), their counts (1 BatchGetItem), bob's and 3 followees' tweets (4), the timeline (1),
    # the 3 missing entries (1 BatchWriteItem)
    assert (result.written, result.calls) == (3, 8)


# -- properties over interleavings ------------------------------------------------------------------------

USERS = ("ann", "bob", "cat")
step = st.one_of(
    st.tuples(st.just("follow"), st.sampled_from(USERS), st.sampled_from(USERS)),
    st.tuples(st.just("unfollow"), st.sampled_from(USERS), st.sampled_from(USERS)),
    st.tuples(st.just("post"), st.sampled_from(USERS), st.just("")),
    st.tuples(st.just("delete"), st.integers(0, 20), st.just("")),
    st.tuples(st.just("deliver"), st.integers(0, 50), st.just("")),
    st.tuples(st.just("redeliver"), st.integers(0, 50), st.just("")),
)


class Interleaving:
    """Source changes as the API makes them, each leaving a stream record the test delivers when told."""

    def __init__(self, client: Any, tables: dict[str, str]) -> None:
        self.client, self.tables = client, tables
        self.graph = SocialGraph(client, tables["social-graph"])
        self.fanout = build_service(client, tables, live_tweets=LiveTweets(client, tables["tweets"]))
        self.follows = follow_timelines(client, tables)
        self.tweets: list[Tweet] = []
        self.pending: list[dict[str, Any]] = []
        self.delivered: list[dict[str, Any]] = []

    def apply(self, kind: str, a: Any, b: str) -> None:
        if kind == "follow" and a != b and self.graph.follow(a, b):
            self.pending += [edge_record("INSERT", a, b), edge_record("INSERT", a, b, side="FOLLOWER")]
        elif kind == "unfollow" and a != b and self.graph.unfollow(a, b):
            self.pending += [edge_record("REMOVE", a, b, side="FOLLOWER"), edge_record("REMOVE", a, b)]
        elif kind == "post":
            tweet = make_tweet(len(self.tweets) + 1, author=a)
            self.tweets.append(tweet)
            store_tweets(self.client, self.tables, tweet)
            self.pending.append(stream_record("INSERT", new=tweet))
        elif kind == "delete" and self.tweets:
            tweet = self.tweets[a % len(self.tweets)]
            if not self.deleted(tweet):
                store_tweets(self.client, self.tables, tombstone(tweet))
                self.pending.append(stream_record("MODIFY", new=tombstone(tweet), old=tweet))
        elif kind == "deliver" and self.pending:
            self.deliver(self.pending.pop(a % len(self.pending)))
        elif kind == "redeliver" and self.delivered:
            self.deliver(self.delivered[a % len(self.delivered)])

    def deliver(self, record: dict[str, Any]) -> None:
        if "tweet_id" in record["dynamodb"]["Keys"]:
            self.fanout.handle(record)
        else:
            self.follows.handle(record)
        self.delivered.append(record)

    def deleted(self, tweet: Tweet) -> bool:
        item = self.client.get_item(TableName=self.tables["tweets"], Key={"tweet_id": {"S": tweet.tweet_id}})
        return item["Item"]["deleted"]["BOOL"]

    def expected(self) -> dict[str, set[str]]:
        """Each user's own live tweets and those of whom they follow, from the source tables alone."""
        live = [t for t in self.tweets if not self.deleted(t)]
        wanted: dict[str, set[str]] = defaultdict(set)
        for user in USERS:
            authors = {user} | {b for b in USERS if b != user and self.graph.is_following(user, b)}
            wanted[user] = {t.tweet_id for t in live if t.author_id in authors}
        return wanted

    def held(self) -> dict[str, set[str]]:
        return {user: set(timeline(self.client, self.tables, user)) for user in USERS}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, max_size=40))
def test_delivered_in_any_order_and_any_number_of_times_timelines_end_as_the_source_says(steps, monkeypatch):
    set_aws_environment(monkeypatch)
    with mock_aws():
        run = Interleaving(*new_tables())
        for kind, a, b in steps:
            run.apply(kind, a, b)
        while run.pending:  # every record is delivered at least once, after the change it records
            run.deliver(run.pending.pop())
        assert run.held() == run.expected()
        for record in list(reversed(run.delivered)):  # and again, oldest last: nothing changes
            run.deliver(record)
        assert run.held() == run.expected()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, max_size=40))
def test_repair_fixes_whatever_records_were_never_delivered(steps, monkeypatch):
    set_aws_environment(monkeypatch)
    with mock_aws():
        client, tables = new_tables()
        run = Interleaving(client, tables)
        for kind, a, b in steps:
            run.apply(kind, a, b)
        # Whatever is still pending is lost (sent to a failure queue, say): repair makes up for it.
        repair = repairer(client, tables)
        for user in USERS:
            repair.repair(user)
        assert run.held() == run.expected()


# -- two regions and a failure, on DynamoDB Local ---------------------------------------------------------


def test_a_follow_the_failed_region_never_replicated_and_an_unfollow_during_the_outage_converge(
    dynamodb_local, tmp_path
):
    regions = TwoRegions(dynamodb_local, tmp_path, derived=[TIMELINES, COUNTS])
    tables = {schema.role: table_name(schema) for schema in (TWEETS, SOCIAL_GRAPH, TIMELINES, COUNTS)}
    east, west = REGIONS

    def fanout(region: str):
        client = regions.dynamodb[region]
        return build_service(client, tables, live_tweets=LiveTweets(client, tables["tweets"])).handle

    regions.consume(TWEETS, fanout)
    regions.consume(SOCIAL_GRAPH, lambda region: follow_timelines(regions.dynamodb[region], tables).handle)
    graph = {region: SocialGraph(regions.dynamodb[region], tables["social-graph"]) for region in REGIONS}
    before = make_tweet(1)
    store_tweets(regions.dynamodb[east], tables, before)
    graph[east].follow("carol", "alice")
    regions.observe()
    regions.settle()

    regions.down.add(east)
    graph[east].follow("bob", "alice")  # accepted by east just before it failed; never replicated
    regions.observe()
    during = [make_tweet(n) for n in (2, 3)]
    store_tweets(regions.dynamodb[west], tables, *during)  # posted through the front door, in west
    graph[west].unfollow("carol", "alice")
    regions.observe()
    regions.settle()
    assert timeline(regions.dynamodb[west], tables, "bob") == []  # west has not heard of the follow
    regions.down.discard(east)
    regions.settle()

    everything = [t.tweet_id for t in (*reversed(during), before)]
    for region in REGIONS:
        assert timeline(regions.dynamodb[region], tables, "bob") == everything, region
        assert timeline(regions.dynamodb[region], tables, "carol") == [], region
    entries = [all_entries(regions.dynamodb[region], tables["timelines"]) for region in REGIONS]
    assert entries[0] == entries[1]
