"""The fault drill's checks: the tables read back against what the drill planned and saw. Every
accepted tweet is in every recipient's timeline exactly once, deleted tweets are in none, every
replay returned the original response, follower counts match the graph, and nothing retriable is
left in the failure destination."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from aviary.counts import Counts
from aviary.keys import FOLLOWER_PREFIX, tweet_id_from_entry_key, user_id_from_sk, user_pk
from tools.drills.fault_stream import Applied, Tally
from tools.drills.fault_workload import CELEBRITY_THRESHOLD, Post


def stored_graph(
    client: Any, tables: Mapping[str, str], users: list[str]
) -> tuple[dict[str, set[str]], dict[str, int]]:
    """Followers as the social-graph table holds them and their counts as the counts table holds them
    (what the fan-out reads)."""
    followers: dict[str, set[str]] = {}
    counts = Counts(client, tables["counts"])
    for user in users:
        items = all_pages(
            client.query,
            TableName=tables["social-graph"],
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": user_pk(user)}},
            ConsistentRead=True,
        )
        followers[user] = {
            user_id_from_sk(item["sk"]["S"]) for item in items if item["sk"]["S"].startswith(FOLLOWER_PREFIX)
        }
    return followers, {user: counts.followers(user) for user in users}


def all_pages(operation: Callable[..., dict[str, Any]], **request: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = operation(**request)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return items
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def check_invariants(
    dynamodb: Any,
    tables: Mapping[str, str],
    posts: list[Post],
    followers: Mapping[str, set[str]],
    counts: Mapping[str, int],
    tally: Tally,
    applied: Applied,
) -> dict[str, Any]:
    """The tables against the plan and the tally: what each check found, whether the invariants held,
    and the units the result counts (`_survived`, `_lost`, `_duplicated`)."""
    # Only the attributes the checks read: moto spends most of a large read on serializing it.
    stored = all_pages(
        dynamodb.scan,
        TableName=tables["tweets"],
        ProjectionExpression="tweet_id, #text, deleted",
        ExpressionAttributeNames={"#text": "text"},
        ConsistentRead=True,
    )
    entries = [
        entry
        for user in followers
        for entry in all_pages(
            dynamodb.query,
            TableName=tables["timelines"],
            KeyConditionExpression="user_id = :user",
            ExpressionAttributeValues={":user": {"S": user}},
            ProjectionExpression="user_id, entry_key",
            ConsistentRead=True,
        )
    ]
    accepted = [post for post in posts if post.tweet is not None]

    # The tweets table: exactly one item per accepted post, with the ID its client was given.
    by_text = {post.text: post for post in posts}
    items_per_post: Counter[int] = Counter()
    tombstones: set[str] = set()
    live: set[str] = set()
    orphans = 0
    for item in stored:
        tweet_id = item["tweet_id"]["S"]
        if item.get("deleted", {}).get("BOOL"):
            tombstones.add(tweet_id)  # a tombstone has no text left to match a post by
            continue
        live.add(tweet_id)
        post = by_text.get(item.get("text", {}).get("S", ""))
        if post is None or post.tweet is None or post.tweet["id"] != tweet_id:
            orphans += 1
        else:
            items_per_post[post.index] += 1
    # A delete whose answer was lost may still have landed: the table says what is deleted.
    deleted = {post.tweet["id"] for post in accepted if post.deleted} | tombstones
    missing_tweets = sum(1 for post in accepted if post.tweet["id"] not in live | deleted)
    tweets_stored_twice = sum(n - 1 for n in items_per_post.values() if n > 1)

    # Timelines: who should hold each tweet, and who does.
    holders: dict[str, Counter[str]] = defaultdict(Counter)
    for item in entries:
        holders[tweet_id_from_entry_key(item["entry_key"]["S"])][item["user_id"]["S"]] += 1
    survived = missing_entries = doubled_entries = deleted_shown = misplaced = 0
    for post in accepted:
        audience = {post.author}
        if counts.get(post.author, 0) <= CELEBRITY_THRESHOLD:
            audience |= followers.get(post.author, set())
        held = holders.pop(post.tweet["id"], Counter())
        if post.tweet["id"] in deleted:
            deleted_shown += len(held)
            survived += len(audience - held.keys())
            continue
        for user in audience:
            copies = held.pop(user, 0)
            if copies == 0:
                missing_entries += 1
            elif copies == 1:
                survived += 1
            else:
                doubled_entries += 1
        misplaced += len(held)  # timelines outside the audience (a celebrity's followers, say)
    misplaced += sum(len(held) for held in holders.values())  # tweets no client was given

    replay_mismatches = tally.replays - tally.replays_matching
    survived += tally.replays_matching
    left = len(tally.left_after_redrive)
    count_drift = sum(1 for user, count in counts.items() if count != len(followers.get(user, ())))
    violations = {
        "timeline entries missing": missing_entries,
        "timeline entries doubled": doubled_entries,
        "misplaced entries": misplaced,
        "deleted tweets shown": deleted_shown,
        "replays differing": replay_mismatches,
        "left in failure destination": left,
        "accepted tweets missing": missing_tweets,
        "tweets stored twice": tweets_stored_twice,
        "orphan tweets": orphans,
        "follower counts drifted": count_drift,
    }
    broken = [name for name, count in violations.items() if count]
    return {
        "timeline entries": len(entries),
        "inserts applied after delete": applied.inserts_after_delete(),
        **{name: count for name, count in violations.items() if name != "left in failure destination"},
        "invariants": "all held" if not broken else "broken: " + ", ".join(broken),
        "_survived": survived,
        "_lost": missing_entries + deleted_shown + replay_mismatches + left + missing_tweets,
        "_duplicated": doubled_entries + misplaced + tweets_stored_twice + orphans,
    }
