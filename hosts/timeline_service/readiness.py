"""What GET /health answers on a timeline host: whether this host is ready to serve timelines.

Ready means: the instance-store volume holding the page cache is mounted, the page cache opens,
the token settings are loaded (a host that cannot check tokens answers every reader 401 or 503),
and DynamoDB answers or this host holds pages it may serve stale. A DynamoDB outage alone does not
take a warm host out of the load balancer: it keeps serving what it has. Each check's answer is
kept for a few seconds, since the load balancer's nodes and Route 53's checkers all ask.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aviary.schema import TIMELINES, TableSchema
from aviary.table_probe import unavailable_tables

# What one check answers: None when fine, else a sentence saying what is wrong.
Check = Callable[[], Awaitable[str | None]]

PROBE_DEADLINE_SECONDS = 1.0
# Health checks arrive from every load balancer node every few seconds: one DynamoDB probe serves
# them all for this long.
REMEMBER_SECONDS = 5.0


@dataclass
class Readiness:
    """Named checks, all run on each question (at once), each answer remembered for a while."""

    checks: dict[str, Check] = field(default_factory=dict)
    remember_seconds: float = REMEMBER_SECONDS
    clock: Callable[[], float] = time.monotonic
    _answers: dict[str, tuple[float, str | None]] = field(default_factory=dict)

    def add(self, name: str, check: Check) -> None:
        self.checks[name] = check

    async def problems(self) -> dict[str, str]:
        """Each failing check's name and what is wrong; empty when the host is ready."""
        names = list(self.checks)
        answers = await asyncio.gather(*(self._answer(name) for name in names))
        return {name: problem for name, problem in zip(names, answers, strict=True) if problem}

    async def _answer(self, name: str) -> str | None:
        now = self.clock()
        remembered = self._answers.get(name)
        if remembered is not None and now - remembered[0] < self.remember_seconds:
            return remembered[1]
        problem = await self.checks[name]()
        self._answers[name] = (self.clock(), problem)
        return problem


def volume_mounted(mount_point: str) -> Check:
    """The instance-store RAID0 volume is mounted where the cache lives (else the cache would sit
    on the small root volume, or nowhere)."""

    async def check() -> str | None:
        if os.path.ismount(mount_point):
            return None
        return f"the cache volume is not mounted at {mount_point}"

    return check


def cache_usable(cache: Any) -> Check:
    async def check() -> str | None:
        return None if cache.available else f"the page cache at {cache.path} cannot be opened"

    return check


def token_keys_loaded(keys_loaded: Callable[[], bool]) -> Check:
    async def check() -> str | None:
        return None if keys_loaded() else "the token signing keys are not loaded yet"

    return check


def tables_answer(
    dynamodb: Any,
    tables: Sequence[tuple[str, TableSchema]],
    reads: ThreadPoolExecutor,
    deadline_seconds: float = PROBE_DEADLINE_SECONDS,
) -> Check:
    """Every table answers one read within the deadline (aviary/table_probe.py); `reads` runs them."""

    async def check() -> str | None:
        failed = await asyncio.to_thread(unavailable_tables, dynamodb, tables, reads, deadline_seconds)
        if not failed:
            return None
        return f"the tables {', '.join(failed)} did not answer within {deadline_seconds:g} s"

    return check


def dynamodb_or_stale_pages(
    dynamodb: Any, timelines_table: str, cache: Any, reads: ThreadPoolExecutor
) -> Check:
    """DynamoDB answers a read of the timelines table within the deadline, or, if it does not, the
    cache holds a page young enough to be served stale. `reads` runs the probe's read."""
    timelines_answer = tables_answer(dynamodb, [(timelines_table, TIMELINES)], reads)

    async def check() -> str | None:
        problem = await timelines_answer()
        if problem is None or await asyncio.to_thread(cache.holds_servable_pages):
            return None
        return f"{problem}, and the cache holds no page to serve stale"

    return check
