"""Serves timeline pages from the host cache or DynamoDB, never waiting longer than a deadline.

Fresh cached pages skip DynamoDB. Otherwise the store is read in a thread under a deadline;
if DynamoDB is slow or failing, the last cached page is served, marked stale, instead.
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
from typing import Any, Protocol

from boto3.exceptions import Boto3Error
from botocore.exceptions import BotoCoreError, ClientError

from aviary.batch_get import StoreIncomplete
from aviary.errors import ServiceUnavailable
from aviary.timeline import TimelinePage
from hosts.timeline_service.cache import TimelineCache

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 2
PageKey = tuple[str, str | None, int]  # (user_id, decoded cursor, limit)


class PageReader(Protocol):
    def read_page(self, user_id: str, limit: int, cursor: str | None) -> TimelinePage: ...


class _Overloaded(Exception):
    """Too many DynamoDB reads already under way: queueing more would only make them all late."""


# What "DynamoDB is slow or failing" looks like from here; anything else is a bug and surfaces.
DEPENDENCY_FAILURES = (TimeoutError, BotoCoreError, ClientError, Boto3Error, StoreIncomplete, _Overloaded)


@dataclass(frozen=True)
class TimelineResult:
    # The page as JSON text: a cached page goes out as stored, without a parse and a re-dump.
    page_json: str
    stale: bool  # served from the cache because DynamoDB could not answer in time
    age_seconds: float  # since the page was read from DynamoDB

    @property
    def page(self) -> TimelinePage:
        return json.loads(self.page_json)


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
        read_threads: int = 8,
        max_pending_reads: int = 64,
    ) -> None:
        self.store = store
        self.cache = cache
        self.clock = clock
        self.fresh_seconds = fresh_seconds
        self.deadline_seconds = deadline_seconds
        self.max_pending_reads = max_pending_reads
        self._reads = ThreadPoolExecutor(max_workers=read_threads, thread_name_prefix="timeline-read")
        # One writer thread: SQLite takes one writer at a time anyway, and replies never wait on it.
        self._cache_writes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="timeline-cache-write")
        self._pending: dict[PageKey, asyncio.Future[str]] = {}

    async def timeline(self, user_id: str, limit: int, cursor: str | None) -> TimelineResult:
        """A page of `user_id`'s timeline after `cursor` (a decoded entry key, None for the newest)."""
        looked_at = self.clock()
        # On the event loop: a WAL read of one row never waits on the writer.
        cached = self.cache.get_json(user_id, cursor, limit, now=looked_at)
        if cached is not None and cached[1] < self.fresh_seconds:
            return TimelineResult(cached[0], stale=False, age_seconds=cached[1])

        try:
            read = self._read((user_id, cursor, limit))
            # shield: one caller giving up must not cancel the read others share.
            page_json = await asyncio.wait_for(asyncio.shield(read), self.deadline_seconds)
        except DEPENDENCY_FAILURES as error:
            log.warning("Timeline read for %s failed (%s: %s)", user_id, type(error).__name__, error)
            if cached is not None:
                age = cached[1] + max(0.0, self.clock() - looked_at)
                return TimelineResult(cached[0], stale=True, age_seconds=age)
            raise ServiceUnavailable(
                "The timeline could not be read in time and this host has no copy of it; "
                f"retry in {RETRY_AFTER_SECONDS} seconds.",
                retry_after_seconds=RETRY_AFTER_SECONDS,
            ) from None
        return TimelineResult(page_json, stale=False, age_seconds=0.0)

    def _read_json(self, user_id: str, limit: int, cursor: str | None) -> str:
        # Serialised in the read thread, so the event loop never spends time on a large page.
        return json.dumps(self.store.read_page(user_id, limit, cursor), separators=(",", ":"))

    def _read(self, key: PageKey) -> asyncio.Future[str]:
        """The read of `key` under way, or a new one: concurrent misses of one page share one read."""
        pending = self._pending.get(key)
        if pending is not None:
            return pending
        if len(self._pending) >= self.max_pending_reads:
            raise _Overloaded(f"{len(self._pending)} reads already pending")
        user_id, cursor, limit = key
        started = self.clock()
        read = asyncio.get_running_loop().run_in_executor(
            self._reads, self._read_json, user_id, limit, cursor
        )
        self._pending[key] = read
        read.add_done_callback(lambda done: self._finished(key, started, done))
        return read

    def _finished(self, key: PageKey, started: float, read: asyncio.Future[Any]) -> None:
        self._pending.pop(key, None)
        if read.cancelled() or read.exception() is not None:
            return  # the waiters report it; retrieving it here keeps asyncio from warning
        # Cache even a read that finished after every waiter gave up: the next caller gains.
        user_id, cursor, limit = key
        with contextlib.suppress(RuntimeError):  # raised only once close() has run
            self._cache_writes.submit(
                self.cache.put_json, user_id, cursor, limit, read.result(), fetched_at=started
            )

    def close(self) -> None:
        self._reads.shutdown(wait=False, cancel_futures=True)
        self._cache_writes.shutdown(wait=True)
