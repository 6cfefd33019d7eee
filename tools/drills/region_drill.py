"""Region drill: the primary region goes down mid-stream while a client keeps posting through the
front door; it comes back; both regions must converge with nothing lost and nothing doubled.

Runs against a deployed local stage (tools/local_runtime). The client behaves as a real one
should: one Idempotency-Key per tweet, retried on 502/503 or no answer, so a post that landed
before its answer was lost is not posted twice.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tools.drills.result import DrillResult
from tools.local_runtime.control import LocalStage

AUTHOR = "drill_author"
READER = "drill_reader"
RETRYABLE = (502, 503)
MAX_ATTEMPTS = 60
RETRY_DELAY_SECONDS = 0.25
PAGE = 100  # the timeline API's largest page


@dataclass
class PostingClient:
    """Posts through one base URL and remembers what the API accepted."""

    base_url: str
    token: str
    accepted: dict[str, str] = field(default_factory=dict)  # tweet id -> region that answered 201
    retried: int = 0

    def post(self, key: str, text: str) -> tuple[str, str]:
        """(tweet id, region that served it); retries until accepted or MAX_ATTEMPTS."""
        body = json.dumps({"text": text}).encode()
        for _attempt in range(MAX_ATTEMPTS):
            status, payload, region = request(
                f"{self.base_url}/tweets",
                "POST",
                body,
                {
                    "Authorization": f"Bearer {self.token}",
                    "Idempotency-Key": key,
                    "Content-Type": "application/json",
                },
            )
            if status == 201:
                self.accepted[payload["id"]] = region
                return payload["id"], region
            if status is not None and status not in RETRYABLE:
                raise RuntimeError(f"post {key} was refused: {status} {payload}")
            self.retried += 1
            time.sleep(RETRY_DELAY_SECONDS)
        raise RuntimeError(f"post {key} was not accepted after {MAX_ATTEMPTS} attempts")


def request(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int | None, Any, str | None]:
    """(status, JSON body, X-Aviary-Region); status None when nothing answered."""
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, data=body, method=method, headers=headers or {}), timeout=15
        ) as response:
            return (
                response.status,
                json.loads(response.read() or b"null"),
                response.headers.get("X-Aviary-Region"),
            )
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null"), error.headers.get("X-Aviary-Region")
    except (urllib.error.URLError, TimeoutError, ConnectionError):
        return None, None, None


def timeline_ids(api_url: str, token: str) -> list[str]:
    """Every tweet id on the caller's timeline in one region, all pages."""
    ids: list[str] = []
    cursor = ""
    while True:
        query = f"?limit={PAGE}" + (f"&cursor={cursor}" if cursor else "")
        status, page, _ = request(f"{api_url}/timeline{query}", headers={"Authorization": f"Bearer {token}"})
        if status != 200:
            raise RuntimeError(f"timeline read at {api_url} answered {status}: {page}")
        ids.extend(item["id"] for item in page["items"])
        cursor = page.get("next_cursor") or ""
        if not cursor:
            return ids


def run(stage: LocalStage, *, posts_per_phase: int = 20) -> DrillResult:
    """Posts `posts_per_phase` tweets before, during and after the primary region's outage."""
    settings = stage.settings
    primary = settings.primary_region
    started = time.monotonic()
    author, reader = stage.token(AUTHOR), stage.token(READER)
    status, body, _ = request(
        f"{settings.front_door_url}/users/{AUTHOR}/follow",
        "POST",
        headers={"Authorization": f"Bearer {reader}"},
    )
    if status != 200:
        raise RuntimeError(f"the drill's reader could not follow its author: {status} {body}")
    # The follow must reach every region before the outage. Timelines do not backfill when a follow
    # arrives: a follow still unreplicated when its region fails would leave the other region
    # fanning out without it, and the reader would miss those tweets there for good (see README).
    stage.settle()
    client = PostingClient(settings.front_door_url, author)
    run_id = f"{int(time.time())}"

    def post_phase(phase: str) -> list[str]:
        return [
            client.post(f"drill-{run_id}-{phase}-{n:04d}", f"region drill {run_id} {phase} {n}")[1]
            for n in range(posts_per_phase)
        ]

    post_phase("before")
    went_down = time.time()
    stage.region_down(primary)
    served_during = post_phase("during")
    # Failover time: from the outage until the front door routed to a surviving region.
    failovers = (stage.front_door_status() or {}).get("failovers", [])
    failover = next(f for f in failovers if f["from"] == primary and f["at"] >= went_down)
    failover_seconds = failover["at"] - went_down
    stage.settle()
    came_back = time.monotonic()
    stage.region_up(primary)
    catch_up_seconds = (time.monotonic() - came_back) + stage.settle()
    post_phase("after")
    stage.settle()

    accepted = list(client.accepted)
    timelines = {region: timeline_ids(settings.api_url(region), reader) for region in settings.regions}
    lost = duplicated = 0
    for ids in timelines.values():
        counts = Counter(ids)
        lost += sum(1 for tweet_id in accepted if counts[tweet_id] == 0)
        duplicated += sum(count - 1 for tweet_id, count in counts.items() if count > 1)
    differing = stage.differences(list(settings.regions))
    lag = (stage.replication_status() or {}).get("lag_seconds", {})
    return DrillResult(
        scenario=f"region {primary} down mid-stream",
        injected=f"{primary} stopped for {posts_per_phase} of {3 * posts_per_phase} posts",
        survived=sum(1 for tweet_id in accepted if all(tweet_id in ids for ids in timelines.values())),
        lost=lost + len(differing),
        duplicated=duplicated,
        seconds=time.monotonic() - started,
        details={
            "posts accepted": len(accepted),
            "posts retried (502/503/no answer)": client.retried,
            "served by another region while down": sum(1 for r in served_during if r != primary),
            "failover seconds": round(failover_seconds, 2),
            "catch-up seconds": round(catch_up_seconds, 2),
            "replication lag median s": round(lag.get("median") or 0.0, 3),
            "replication lag max s": round(lag.get("max") or 0.0, 3),
            "source items that differ between regions": len(differing),
        },
    )
