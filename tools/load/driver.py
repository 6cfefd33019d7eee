"""The load itself: locust users reading timelines, posting and liking through the front door.

    python -m tools.load.driver PLAN.json RESULT.json

Runs in a process of its own (locust patches sockets and threads with gevent on import, which the
orchestrator in tools/load/mixed_load.py must not inherit). It prints one line, `started <epoch>`,
when the users begin, so the orchestrator can time the region failure against the same clock.

Every user is one account and behaves as a careful client would: a post carries an Idempotency-Key
and is retried with that same key on a 5xx or no answer until it is accepted or refused; a like is
retried the same way (liking twice changes nothing). Each attempt is a request in locust's figures.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent

# locust patches the standard library with gevent when it is imported.
from locust import FastHttpUser, between, task
from locust.env import Environment

POST = "POST /tweets"
TIMELINE = "GET /timeline"
LIKE = "POST /tweets/{id}/like"
ROUTES = (TIMELINE, POST, LIKE)
RETRY_DELAY_SECONDS = 0.5
RETRY_FOR_SECONDS = 60.0  # a write still refused after this long is counted as given up


@dataclass
class Journal:
    """What the API answered, attempt by attempt, and what it accepted."""

    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)  # (route, status) -> count
    failures: list[tuple[float, str, int]] = field(default_factory=list)  # (epoch, route, status)
    accepted_posts: list[dict[str, Any]] = field(default_factory=list)
    accepted_likes: list[dict[str, Any]] = field(default_factory=list)
    given_up: list[dict[str, Any]] = field(default_factory=list)
    in_flight: int = 0

    def answered(self, route: str, status: int) -> None:
        self.statuses[(route, status)] += 1
        if status == 0 or status >= 500:
            self.failures.append((time.time(), route, status))


JOURNAL = Journal()
PLAN: dict[str, Any] = {}
ACCOUNTS: list[tuple[str, str]] = []  # (handle, token) not yet taken by a user
DEADLINE = {"at": float("inf")}


class Account(FastHttpUser):
    """One signed-in user of Aviary."""

    wait_time = between(0.0, 0.1)

    def on_start(self) -> None:
        self.handle, token = ACCOUNTS.pop()
        self.auth = {"Authorization": f"Bearer {token}"}
        self.posted = 0
        self.rng = random.Random(f"{PLAN['seed']}-{self.handle}")

    def _request(self, route: str, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        with self.client.request(method, path, name=route, catch_response=True, **kwargs) as response:
            status = response.status_code or 0
            JOURNAL.answered(route, status)
            if status >= 500 or status == 0:
                response.failure(f"{status}")
            elif status >= 400:
                response.failure(f"{status} {(response.text or '')[:200]}")
            else:
                response.success()
            try:
                body = response.json() if response.text else None
            except ValueError:
                body = None
        return status, body

    def _until_answered(self, route: str, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """Retries 5xx and no answer with the same request; returns the first other answer."""
        started = time.monotonic()
        while True:
            status, body = self._request(route, method, path, **kwargs)
            if 0 < status < 500 or time.monotonic() - started > RETRY_FOR_SECONDS:
                return status, body
            gevent.sleep(RETRY_DELAY_SECONDS)

    def _idle_after_deadline(self) -> bool:
        if time.time() < DEADLINE["at"]:
            return False
        gevent.sleep(0.2)
        return True

    @task(75)
    def read_timeline(self) -> None:
        if not self._idle_after_deadline():
            self._request(TIMELINE, "GET", "/timeline?limit=20", headers=self.auth)

    @task(20)
    def post(self) -> None:
        if self._idle_after_deadline():
            return
        self.posted += 1
        key = f"load-{PLAN['run']}-{self.handle}-{self.posted:05d}"
        text = f"load {PLAN['run']} {self.handle} {self.posted}"
        JOURNAL.in_flight += 1
        try:
            status, body = self._until_answered(
                POST, "POST", "/tweets", json={"text": text},
                headers={**self.auth, "Idempotency-Key": key, "Content-Type": "application/json"},
            )  # fmt: skip
        finally:
            JOURNAL.in_flight -= 1
        record = {"key": key, "author": self.handle, "text": text, "status": status, "at": time.time()}
        if status == 201:
            JOURNAL.accepted_posts.append({**record, "id": body["id"]})
        else:
            JOURNAL.given_up.append(record)

    @task(5)
    def like(self) -> None:
        if self._idle_after_deadline() or not JOURNAL.accepted_posts:
            return
        tweet_id = self.rng.choice(JOURNAL.accepted_posts)["id"]
        JOURNAL.in_flight += 1
        try:
            status, _ = self._until_answered(LIKE, "POST", f"/tweets/{tweet_id}/like", headers=self.auth)
        finally:
            JOURNAL.in_flight -= 1
        if status == 200:
            JOURNAL.accepted_likes.append({"user": self.handle, "id": tweet_id, "at": time.time()})


def route_figures(environment: Environment, seconds: float) -> dict[str, dict[str, float]]:
    figures = {}
    for route in ROUTES:
        entry = environment.stats.entries.get((route, "GET" if route == TIMELINE else "POST"))
        if entry is None or not entry.num_requests:
            continue
        figures[route] = {
            "requests": entry.num_requests,
            "requests_per_second": entry.num_requests / seconds,
            "p50_ms": entry.get_response_time_percentile(0.5),
            "p95_ms": entry.get_response_time_percentile(0.95),
            "p99_ms": entry.get_response_time_percentile(0.99),
        }
    return figures


def main(plan_path: str, result_path: str) -> None:
    PLAN.update(json.loads(Path(plan_path).read_text()))
    ACCOUNTS.extend(sorted(PLAN["accounts"].items(), reverse=True))
    environment = Environment(user_classes=[Account], host=PLAN["base_url"])
    runner = environment.create_local_runner()
    users = len(ACCOUNTS)
    started = time.time()
    DEADLINE["at"] = started + PLAN["duration_seconds"]
    runner.start(users, spawn_rate=users)
    print(f"started {started}", flush=True)
    gevent.sleep(PLAN["duration_seconds"])
    # No new work after the deadline; writes already under way finish (their retries are bounded).
    while JOURNAL.in_flight and time.time() < DEADLINE["at"] + RETRY_FOR_SECONDS + 5:
        gevent.sleep(0.1)
    seconds = time.time() - started
    runner.quit()
    Path(result_path).write_text(
        json.dumps(
            {
                "started": started,
                "seconds": seconds,
                "routes": route_figures(environment, seconds),
                "statuses": [[route, status, n] for (route, status), n in sorted(JOURNAL.statuses.items())],
                "failures": JOURNAL.failures,
                "accepted_posts": JOURNAL.accepted_posts,
                "accepted_likes": JOURNAL.accepted_likes,
                "given_up": JOURNAL.given_up,
            }
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
