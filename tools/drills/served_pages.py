"""Counting what survived a drill: timelines as hosts served them, page by page, before and after."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Each user's timeline as one host served it: page JSON text in order, None where it answered 503.
ServedTimelines = Mapping[str, Sequence[str | None]]


@dataclass(frozen=True)
class Tally:
    survived: int = 0
    lost: int = 0
    duplicated: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.survived + other.survived, self.lost + other.lost, self.duplicated + other.duplicated
        )


def tweet_ids(pages: Sequence[str | None]) -> list[str]:
    """The tweet ids of a timeline's pages in the order served (a 503 contributes none)."""
    return [item["id"] for page in pages if page is not None for item in json.loads(page)["items"]]


def duplicated_entries(pages: Sequence[str | None]) -> int:
    """Entries of one timeline beyond the first of each tweet: every tweet must appear exactly once."""
    ids = tweet_ids(pages)
    return len(ids) - len(set(ids))


def compare_pages(before: ServedTimelines, after: ServedTimelines) -> Tally:
    """Pages served after a failure against the same pages before it, byte for byte.

    A page identical to its counterpart survived; one that differs, is missing or became a 503 is
    lost, and so is every page that was not there before (a timeline must not grow from a failure).
    """
    survived = lost = duplicated = 0
    for handle in before.keys() | after.keys():
        old, new = before.get(handle, ()), after.get(handle, ())
        for index, page in enumerate(old):
            if index < len(new) and new[index] is not None and new[index] == page:
                survived += 1
            else:
                lost += 1
        lost += max(0, len(new) - len(old))
        duplicated += duplicated_entries(new)
    return Tally(survived, lost, duplicated)


def timelines_matching(expected: Mapping[str, Sequence[str]], pages: ServedTimelines) -> int:
    """How many users' served timelines hold exactly the tweets the write path was given, in order."""
    return sum(tweet_ids(pages.get(handle, ())) == list(ids) for handle, ids in expected.items())


def pages_unlike_writes(expected: Mapping[str, Sequence[str]], pages: ServedTimelines) -> int:
    """Pages of the timelines that do not hold exactly the tweets written (at least one per such user).

    The drills compare pages after a failure with pages before it; this keeps a baseline that was
    already wrong (a fan-out that dropped entries, say) from passing as "nothing changed".
    """
    return sum(
        max(1, len(pages.get(handle, ())))
        for handle, ids in expected.items()
        if tweet_ids(pages.get(handle, ())) != list(ids)
    )
