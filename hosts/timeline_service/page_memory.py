"""The host's first cache tier: recent pages as the bytes a reply sends, in this process's memory.

It sits in front of the instance-store cache (cache.py) so that a hot page is answered without a
disk read or any encoding. Each worker process has its own; the disk cache stays the copy that
every worker shares and that survives a restart. Bounded in bytes: the least recently used page
leaves first.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

PageKey = tuple[str, str | None, int]  # (user_id, decoded cursor, limit)

# What holding a page costs beyond its body (key, entry, dictionary slot), so that many tiny
# pages are bounded as well as a few large ones.
ENTRY_OVERHEAD_BYTES = 256


@dataclass(frozen=True)
class RememberedPage:
    body: bytes  # the page's JSON, encoded as sent
    fetched_at: float  # when it was read from DynamoDB: freshness is judged from this, not from here


class PageMemory:
    """Pages by (user, cursor, limit), at most `max_bytes` of them; 0 turns the tier off.

    Only the event loop's thread may use it (no lock: the loop is the only reader and writer).
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be 0 or more, not {max_bytes}")
        self.max_bytes = max_bytes
        self.bytes_held = 0
        self._pages: OrderedDict[PageKey, RememberedPage] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pages)

    def get(self, key: PageKey) -> RememberedPage | None:
        page = self._pages.get(key)
        if page is not None:
            self._pages.move_to_end(key)
        return page

    def put(self, key: PageKey, body: bytes, fetched_at: float) -> None:
        """Remember `body` unless a page read later is already held, then evict down to the bound."""
        held = self._pages.get(key)
        if held is not None:
            if held.fetched_at > fetched_at:
                return  # a read that finished late must not replace a newer page
            self.discard(key)
        size = _cost(body)
        if size > self.max_bytes:
            return
        self._pages[key] = RememberedPage(body, fetched_at)
        self.bytes_held += size
        while self.bytes_held > self.max_bytes:
            _, evicted = self._pages.popitem(last=False)
            self.bytes_held -= _cost(evicted.body)

    def discard(self, key: PageKey) -> None:
        page = self._pages.pop(key, None)
        if page is not None:
            self.bytes_held -= _cost(page.body)


def _cost(body: bytes) -> int:
    return len(body) + ENTRY_OVERHEAD_BYTES
