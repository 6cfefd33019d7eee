"""Region drill: the primary region goes down mid-stream while a client keeps posting through the
front door; it comes back; both regions must converge with nothing lost and nothing doubled, and
every timeline alike in both: a follower whose follow the primary never replicated before failing
sees every post in both regions, and one who unfollowed during the outage sees none.

Runs against a deployed local stage (tools/local_runtime). The client behaves as a real one
should: one Idempotency-Key per tweet, retried on 502/503 or no answer, so a post that landed
before its answer was lost is not posted twice.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field

from aviary import naming
from aviary.schema import SOCIAL_GRAPH
from aviary.social_graph import SocialGraph
from tools.drills.result import DrillResult
from tools.local_runtime import identity
from tools.local_runtime.control import LocalStage
from tools.local_runtime.stage_http import RETRY_DELAY_SECONDS, request

AUTHOR = "drill_author"
READER = "drill_reader"  # follows the author from the start
LATE_FOLLOWER = "drill_late"  # follows in the primary just before it fails
LEAVER = "drill_leaver"  # unfollows while the primary is down
RETRYABLE = (502, 503)
MAX_ATTEMPTS = 60
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
    """Posts `posts_per_phase` tweets before, during and after the primary region's outage, with the
    follows that make timelines hard to converge: one accepted by the primary just before it fails
    (not yet replicated) and one unfollow made while it is down."""
    settings = stage.settings
    primary = settings.primary_region
    started = time.monotonic()
    tokens = {user: stage.token(user) for user in (AUTHOR, READER, LATE_FOLLOWER, LEAVER)}
    ids = {user: identity.caller_of(token).user_id for user, token in tokens.items()}
    for follower in (READER, LEAVER):
        _follow(settings.front_door_url, tokens[follower], "POST")
    stage.settle()
    client = PostingClient(settings.front_door_url, tokens[AUTHOR])
    run_id = f"{int(time.time())}"

    def post_phase(phase: str) -> list[str]:
        return [
            client.post(f"drill-{run_id}-{phase}-{n:04d}", f"region drill {run_id} {phase} {n}")[1]
            for n in range(posts_per_phase)
        ]

    post_phase("before")
    went_down = time.time()
    stage.region_down(primary)
    # The primary accepted this follow just before it failed: it is in the primary's table and was
    # never replicated. (Sent through the API, it would usually replicate within the 0.2 s before the
    # region is marked down; written through the same domain code, the drill does not depend on
    # that race.)
    graph = naming.table_name(SOCIAL_GRAPH)
    SocialGraph(stage.client("dynamodb", primary), graph).follow(ids[LATE_FOLLOWER], ids[AUTHOR])
    served_during = post_phase("during")
    _follow(settings.front_door_url, tokens[LEAVER], "DELETE")  # lands in the surviving region
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
    shown = {
        user: {region: timeline_ids(settings.api_url(region), tokens[user]) for region in settings.regions}
        for user in (READER, LATE_FOLLOWER, LEAVER)
    }
    lost = duplicated = 0
    for user in (READER, LATE_FOLLOWER):
        for ids_shown in shown[user].values():
            counts = Counter(ids_shown)
            lost += sum(1 for tweet_id in accepted if counts[tweet_id] == 0)
            duplicated += sum(count - 1 for tweet_id, count in counts.items() if count > 1)
    # Stale: the author's tweets still in the leaver's timeline, shown or only stored.
    stale = sum(1 for ids_shown in shown[LEAVER].values() for tweet_id in ids_shown if tweet_id in accepted)
    stored = {region: stage.timeline_entries(region).get(ids[LEAVER], {}) for region in settings.regions}
    stale += sum(
        1
        for entries in stored.values()
        for entry in entries.values()
        if json.loads(entry)["author_id"]["S"] == ids[AUTHOR]
    )
    differing = stage.differences(list(settings.regions))
    divergent = stage.timeline_differences(list(settings.regions))
    lag = (stage.replication_status() or {}).get("lag_seconds", {})
    survived = sum(
        1
        for tweet_id in accepted
        if all(
            tweet_id in ids_shown for user in (READER, LATE_FOLLOWER) for ids_shown in shown[user].values()
        )
    )
    return DrillResult(
        scenario=f"region {primary} down mid-stream",
        injected=(
            f"{primary} stopped for {posts_per_phase} of {3 * posts_per_phase} posts, "
            "a follow it never replicated, an unfollow while it was down"
        ),
        survived=survived,
        lost=lost + stale + len(differing) + len(divergent),
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
            "late follower's timeline, tweets missing": sum(
                1 for ids_shown in shown[LATE_FOLLOWER].values() for t in accepted if t not in ids_shown
            ),
            "unfollower's timeline, author's entries left": stale,
            "divergent timeline entries between regions": len(divergent),
        },
    )


def _follow(front_door: str, token: str, method: str) -> None:
    status, body, _ = request(
        f"{front_door}/users/{AUTHOR}/follow", method, headers={"Authorization": f"Bearer {token}"}
    )
    if status != 200:
        raise RuntimeError(f"{method} /users/{AUTHOR}/follow answered {status}: {body}")
