"""Serves timeline pages from the host's caches or DynamoDB, never waiting longer than a deadline.

Two cache tiers: this process's memory (page_memory.py), then the instance-store disk (cache.py)
that every worker on the host shares and that survives a restart. A page read from DynamoDB less
than `fresh_seconds` ago is served from either without asking DynamoDB; the event loop never
reads the disk itself. Otherwise the store is read in a thread under a deadline; if DynamoDB is
slow or failing, the newest copy either tier holds is served, marked stale, instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from boto3.exceptions import Boto3Error
from botocore.exceptions import BotoCoreError, ClientError

from aviary.batches import BatchIncomplete
from aviary.errors import ServiceUnavailable
from aviary.timeline import TimelinePage
from hosts.timeline_service.cache import TimelineCache
from hosts.timeline_service.page_memory import PageKey, PageMemory, RememberedPage

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 2
# Per worker process. A first page of 20 tweets is about 5 KB, so this holds some 25,000 pages;
# a host runs one worker per vCPU.
DEFAULT_MEMORY_BYTES = 128 * 2**20


class PageReader(Protocol):
    def read_page(self, user_id: str, limit: int, cursor: str | None) -> TimelinePage: ...


class _Overloaded(Exception):
    """Too many DynamoDB reads already under way: queueing more would only make them all late."""


# What "DynamoDB is slow or failing" looks like from here; anything else is a bug and surfaces.
DEPENDENCY_FAILURES = (TimeoutError, BotoCoreError, ClientError, Boto3Error, BatchIncomplete, _Overloaded)


@dataclass(slots=True)  # not frozen: a frozen dataclass costs more to build, once per request
class TimelineResult:
    # The page's JSON as the reply sends it: a cached page goes out as held, with no parse or encoding.
    body: bytes
    stale: bool  # served from a cache because DynamoDB could not answer in time
    age_seconds: float  # since the page was read from DynamoDB

    @property
    def page_json(self) -> str:
        return self.body.decode()

    @property
    def page(self) -> TimelinePage:
        return json.loads(self.body)


class TimelineService:
    """One instance per process; call close() when the app stops."""

    def __init__(
        self,
        store: PageReader,
        cache: TimelineCache,
        clock: Callable[[], float] = time.time,
        fresh_seconds: float = 5,
        deadline_seconds: float = 1.0,
        *,
        memory: PageMemory | None = None,
        read_threads: int = 8,
        # One: reads of one row take microseconds, and a second thread only fights the event loop
        # for the GIL (make bench-host's miss path: fewer requests/s and a higher p99 with two).
        cache_read_threads: int = 1,
        max_pending_reads: int = 64,
    ) -> None:
        self.store = store
        self.cache = cache
        self.memory = PageMemory(DEFAULT_MEMORY_BYTES) if memory is None else memory
        self.clock = clock
        self.fresh_seconds = fresh_seconds
        self.deadline_seconds = deadline_seconds
        self.max_pending_reads = max_pending_reads
        self._reads = ThreadPoolExecutor(max_workers=read_threads, thread_name_prefix="timeline-read")
        self._cache_reads = ThreadPoolExecutor(
            max_workers=cache_read_threads, thread_name_prefix="timeline-cache-read"
        )
        # One writer thread: SQLite takes one writer at a time anyway, and replies never wait on it.
        self._cache_writes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="timeline-cache-write")
        self._pending: dict[PageKey, asyncio.Future[bytes]] = {}

    def fresh_in_memory(self, user_id: str, limit: int, cursor: str | None) -> TimelineResult | None:
        """The page from this process's memory if it is fresh, else None: a hot page without an await."""
        remembered = self.memory.get((user_id, cursor, limit))
        if remembered is None:
            return None
        age = self.clock() - remembered.fetched_at
        if age >= self.fresh_seconds:
            return None
        return TimelineResult(remembered.body, stale=False, age_seconds=max(0.0, age))

    async def timeline(self, user_id: str, limit: int, cursor: str | None) -> TimelineResult:
        """A page of `user_id`'s timeline after `cursor` (a decoded entry key, None for the newest)."""
        hit = self.fresh_in_memory(user_id, limit, cursor)
        if hit is not None:
            return hit
        key = (user_id, cursor, limit)
        looked_at = self.clock()
        remembered = self._servable(key, self.memory.get(key), looked_at)

        # Not fresh in memory: another worker, or this one before a restart, may have stored a newer
        # page on disk. Either way it is the newest copy on the host that may be served stale below.
        newest = _newer(remembered, await self._from_disk(key, looked_at))
        if newest is not None and looked_at - newest.fetched_at < self.fresh_seconds:
            self.memory.put(key, newest.body, newest.fetched_at)
            age = max(0.0, looked_at - newest.fetched_at)
            return TimelineResult(newest.body, stale=False, age_seconds=age)

        try:
            read = self._read(key)
            # shield: one caller giving up must not cancel the read others share.
            body = await asyncio.wait_for(asyncio.shield(read), self.deadline_seconds)
        except DEPENDENCY_FAILURES as error:
            log.warning("Timeline read for %s failed (%s: %s)", user_id, type(error).__name__, error)
            if newest is not None:
                age = max(0.0, self.clock() - newest.fetched_at)
                return TimelineResult(newest.body, stale=True, age_seconds=age)
            raise ServiceUnavailable(
                "The timeline could not be read in time and this host has no copy of it; "
                f"retry in {RETRY_AFTER_SECONDS} seconds.",
                retry_after_seconds=RETRY_AFTER_SECONDS,
            ) from None
        return TimelineResult(body, stale=False, age_seconds=0.0)

    def _servable(self, key: PageKey, page: RememberedPage | None, now: float) -> RememberedPage | None:
        """`page` from memory, unless it is older than the disk cache would serve (its max age)."""
        if page is not None and now - page.fetched_at > self.cache.max_age_seconds:
            self.memory.discard(key)
            return None
        return page

    async def _from_disk(self, key: PageKey, now: float) -> RememberedPage | None:
        """The disk cache's copy, read in a thread: a disk read must not stall every other request."""
        if not self.cache.available:
            return None
        user_id, cursor, limit = key
        found = await asyncio.get_running_loop().run_in_executor(
            self._cache_reads, partial(self.cache.get_json, user_id, cursor, limit, now=now)
        )
        if found is None:
            return None
        page_json, age = found
        return RememberedPage(page_json.encode(), now - age)

    def _read_body(self, user_id: str, limit: int, cursor: str | None) -> bytes:
        # Serialised in the read thread, so the event loop never spends time on a large page.
        return json.dumps(self.store.read_page(user_id, limit, cursor), separators=(",", ":")).encode()

    def _read(self, key: PageKey) -> asyncio.Future[bytes]:
        """The read of `key` under way, or a new one: concurrent misses of one page share one read."""
        pending = self._pending.get(key)
        if pending is not None:
            return pending
        if len(self._pending) >= self.max_pending_reads:
            raise _Overloaded(f"{len(self._pending)} reads already pending")
        user_id, cursor, limit = key
        started = self.clock()
        read = asyncio.get_running_loop().run_in_executor(
            self._reads, self._read_body, user_id, limit, cursor
        )
        self._pending[key] = read
        read.add_done_callback(lambda done: self._finished(key, started, done))
        return read

    def _finished(self, key: PageKey, started: float, read: asyncio.Future[bytes]) -> None:
        # A done callback: runs on the event loop, the only thread that touches self.memory.
        self._pending.pop(key, None)
        if read.cancelled() or read.exception() is not None:
            return  # the waiters report it; retrieving it here keeps asyncio from warning
        # Keep even a read that finished after every waiter gave up: the next caller gains.
        body = read.result()
        self.memory.put(key, body, started)
        with contextlib.suppress(RuntimeError):  # raised only once close() has run
            self._cache_writes.submit(self._write_to_disk, key, body, started)

    def _write_to_disk(self, key: PageKey, body: bytes, fetched_at: float) -> None:
        user_id, cursor, limit = key
        self.cache.put_json(user_id, cursor, limit, body.decode(), fetched_at=fetched_at)

    def close(self) -> None:
        self._reads.shutdown(wait=False, cancel_futures=True)
        self._cache_reads.shutdown(wait=False, cancel_futures=True)
        self._cache_writes.shutdown(wait=True)


def _newer(first: RememberedPage | None, second: RememberedPage | None) -> RememberedPage | None:
    if first is None or second is None:
        return first or second
    return second if second.fetched_at > first.fetched_at else first
