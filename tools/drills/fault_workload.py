"""The fault drill's workload: its users and who follows whom, the posts it plans round by round, and
the traffic a retrying API client sends for them (posts, replays with the same Idempotency-Key,
deletes before and after fan-out)."""

from __future__ import annotations

import json
import logging
import math
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lambda_functions.api.http import dispatch
from tools.drills.fault_stream import Tally
from tools.local_aws.api_events import api_event, jwt_claims

# The workload. Authors post about POSTS_PER_USER tweets each, so every timeline stays far below the
# timeline cap (whose trimming deletes entries on purpose and is not what this drill checks).
POSTS_PER_USER = 50
MIN_USERS = 20
MAX_FOLLOWERS = 5  # an ordinary user's followers: 0 to this many
CELEBRITY_THRESHOLD = 8  # AVIARY_CELEBRITY_THRESHOLD here: above it, tweets are merged on read
CELEBRITY = "celebrity"
POSTS_PER_ROUND = 500  # the stream is read and delivered after each round of posts
MIN_ROUNDS = 4  # so even a small drill has deletes of tweets fanned out in an earlier round
DELETE_BEFORE_FANOUT = 0.01  # posts deleted in the round they were made, before their fan-out
DELETE_AFTER_FANOUT = 0.01  # per round, this share of earlier tweets is deleted
REPLAY_RATE = 0.03  # accepted posts sent again with the same key and body
MAX_ATTEMPTS = 10  # a client's attempts at one request before it gives up


@dataclass
class Post:
    index: int
    author: str
    key: str
    text: str
    round: int
    tweet: dict[str, Any] | None = None  # the body of the 201, once accepted
    deleted: bool = False


def users_for(tweets: int) -> list[str]:
    count = max(MIN_USERS, math.ceil(tweets / POSTS_PER_USER))
    return [CELEBRITY] + [f"user{number:04d}" for number in range(1, count)]


def follow_plan(users: list[str], rng: random.Random) -> list[tuple[str, str]]:
    """(follower, followee) pairs: 0 to MAX_FOLLOWERS followers each, the celebrity a few over the line."""
    plan = []
    for followee in users:
        others = [user for user in users if user != followee]
        count = CELEBRITY_THRESHOLD + 3 if followee == CELEBRITY else rng.randint(0, MAX_FOLLOWERS)
        plan.extend((follower, followee) for follower in rng.sample(others, min(count, len(others))))
    rng.shuffle(plan)
    return plan


def plan_posts(tweets: int, users: list[str], rng: random.Random) -> list[Post]:
    """`tweets` posts by random authors, in at least MIN_ROUNDS rounds of at most POSTS_PER_ROUND."""
    rounds = max(MIN_ROUNDS, math.ceil(tweets / POSTS_PER_ROUND))
    per_round = math.ceil(tweets / rounds)
    posts = []
    for index in range(tweets):
        author = rng.choice(users)
        posts.append(
            Post(
                index=index,
                author=author,
                key=f"drill-{index:06d}-{rng.getrandbits(64):016x}",
                text=f"drill post {index:06d} by {author}",
                round=index // per_round,
            )
        )
    return posts


def largest_timeline(posts: list[Post], followers: Mapping[str, set[str]], counts: Mapping[str, int]) -> int:
    """The most entries any timeline gets from `posts` (a celebrity's tweets are merged on read)."""
    sizes: Counter[str] = Counter()
    for post in posts:
        sizes[post.author] += 1
        if counts.get(post.author, 0) <= CELEBRITY_THRESHOLD:
            for follower in followers.get(post.author, ()):
                sizes[follower] += 1
    return max(sizes.values(), default=0)


# -- the API, as a retrying client sees it ---------------------------------------------------------------


def quiet_logger(name: str) -> logging.Logger:
    log = logging.getLogger(name)
    log.addHandler(logging.NullHandler())
    log.propagate = False  # the drill prints nothing; its counts are the output
    return log


@dataclass
class ApiClient:
    """Sends payload-2.0 events to route tables and retries a 503 with the very same request."""

    routes: Mapping[str, Any]
    log: logging.Logger
    retried_503: int = 0
    gave_up: int = 0
    unexpected: Counter[int] = field(default_factory=Counter)

    def send(self, route_key: str, *, user: str, expect: int, **event: Any) -> dict[str, Any] | None:
        """The first non-503 response (None if every attempt got a 503); other statuses are counted."""
        # The drill's user IDs are its usernames, so the tables it checks read as its plan does.
        request = api_event(route_key, claims={**jwt_claims(user), "sub": user}, **event)
        for _ in range(MAX_ATTEMPTS):
            response = dispatch(request, self.routes, self.log)
            if response["statusCode"] != 503:
                if response["statusCode"] != expect:
                    self.unexpected[response["statusCode"]] += 1
                return response
            self.retried_503 += 1
        self.gave_up += 1
        return None


class Traffic:
    """Sends the planned posts and deletes through `api`, counting replays and deletes in `tally`."""

    def __init__(self, api: ApiClient, rng: random.Random, tally: Tally) -> None:
        self.api = api
        self.plan_rng = rng
        self.tally = tally

    def post(self, post: Post) -> None:
        headers = {"Idempotency-Key": post.key}
        response = self.api.send(
            "POST /tweets", user=post.author, expect=201, body={"text": post.text}, headers=headers
        )
        if response is None or response["statusCode"] != 201:
            return
        post.tweet = json.loads(response["body"])
        if response["headers"].get("idempotent-replayed") == "true":
            self.tally.replays_after_lost_answer += 1
        if self.plan_rng.random() < REPLAY_RATE:
            self.tally.replays += 1
            again = self.api.send(
                "POST /tweets", user=post.author, expect=201, body={"text": post.text}, headers=headers
            )
            if (
                again is not None
                and again["statusCode"] == 201
                and json.loads(again["body"]) == post.tweet
                and again["headers"].get("idempotent-replayed") == "true"
            ):
                self.tally.replays_matching += 1
        if self.plan_rng.random() < DELETE_BEFORE_FANOUT and self.delete(post):
            self.tally.deletes_before_fanout += 1

    def delete_some_earlier(self, posts: list[Post], number: int) -> None:
        earlier = [p for p in posts if p.round < number and p.tweet is not None and not p.deleted]
        count = round(DELETE_AFTER_FANOUT * len([p for p in posts if p.round == number]))
        for post in self.plan_rng.sample(earlier, min(count, len(earlier))):
            if self.delete(post):
                self.tally.deletes_after_fanout += 1

    def delete(self, post: Post) -> bool:
        assert post.tweet is not None
        response = self.api.send(
            "DELETE /tweets/{id}", user=post.author, expect=200, path={"id": post.tweet["id"]}
        )
        # A delete that got no answer may still have landed: the check reads the tweets table.
        post.deleted = response is not None and response["statusCode"] == 200
        return post.deleted
