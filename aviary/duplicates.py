"""A post accepted twice for one request, once in each of two regions, ends as one tweet.

How it happens: a post lands in region A and its answer is lost (A fails mid-request); the client
retries with the same Idempotency-Key, and the retry reaches region B before A's idempotency record
has (A being down). B has no record, so it accepts the post as new, under another tweet ID. Nothing
synchronous across regions can prevent that without giving up writes during an outage.

How it is resolved: both regions' records for the request meet under last-writer-wins replication,
and the record written last wins everywhere. That is the retry's, whose answer the client received
(a client retries only while it has no answer). Wherever a record is replaced by another region's
record for the same request naming another tweet, the stream shows a MODIFY whose old image names
the tweet that lost; that tweet becomes a tombstone (`duplicate_of` names the one kept), which
replicates and takes it out of every timeline like any delete. The region that wrote the losing
record always sees that MODIFY, and always holds the losing tweet (they were written in one
transaction there), so every duplicate is resolved at least once; resolving twice changes nothing.

A key reused after its record expired also replaces the record: that is a new post, not a duplicate,
and is told apart by the old record having expired before the new tweet was made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aviary.ids import ulid_time_ms
from aviary.tombstones import Tombstones


@dataclass(frozen=True)
class Resolution:
    """What one stream record did: the tweet made a tombstone as a duplicate of another, if any."""

    removed: str | None = None
    kept: str | None = None


NOTHING = Resolution()


def _tweet_id(image: dict[str, Any] | None) -> str | None:
    return ((image or {}).get("tweet_id") or {}).get("S")


class DuplicatePosts:
    """Applies idempotency-table stream records (Lambda's plain dict shape) to the tweets table."""

    def __init__(self, dynamodb_client: Any, tweets_table: str) -> None:
        self.tombstones = Tombstones(dynamodb_client, tweets_table)

    def handle(self, record: dict[str, Any]) -> Resolution:
        if record.get("eventName") != "MODIFY":
            return NOTHING
        images = record.get("dynamodb", {})
        old, new = images.get("OldImage"), images.get("NewImage")
        lost, kept = _tweet_id(old), _tweet_id(new)
        if lost is None or kept is None or lost == kept:
            return NOTHING
        expired_at = int((old or {}).get("expiration", {}).get("N", "0"))
        if expired_at * 1000 < ulid_time_ms(kept):
            return NOTHING  # the key was free again: a new post under an old key
        # Absent here, or resolved before: nothing to do (the region that wrote it resolves it).
        return Resolution(lost, kept) if self.tombstones.bury(lost, duplicate_of=kept) else NOTHING
