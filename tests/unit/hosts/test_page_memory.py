"""The in-memory page tier: bounded in bytes, least recently used out first, never older over newer."""

from __future__ import annotations

import pytest

from hosts.timeline_service.page_memory import ENTRY_OVERHEAD_BYTES, PageMemory

PAGE = b'{"items":[],"next_cursor":null}'
COST = len(PAGE) + ENTRY_OVERHEAD_BYTES


def key(user: str, cursor: str | None = None, limit: int = 20) -> tuple[str, str | None, int]:
    return (user, cursor, limit)


def test_a_page_comes_back_with_when_it_was_read():
    memory = PageMemory(10 * COST)
    memory.put(key("alice"), PAGE, 100.0)
    page = memory.get(key("alice"))
    assert (page.body, page.fetched_at) == (PAGE, 100.0)
    assert memory.get(key("alice", limit=10)) is None
    assert memory.get(key("alice", cursor="2026-11-21T19:45:14.123Z#01JD")) is None
    assert memory.get(key("bob")) is None


def test_the_bytes_held_never_exceed_the_bound_and_the_least_recently_used_goes_first():
    memory = PageMemory(3 * COST)
    for user in ("a", "b", "c"):
        memory.put(key(user), PAGE, 1.0)
    memory.get(key("a"))  # used: now "b" is the least recently used
    memory.put(key("d"), PAGE, 1.0)
    assert memory.get(key("b")) is None
    assert all(memory.get(key(user)) is not None for user in ("a", "c", "d"))
    assert memory.bytes_held == 3 * COST
    assert len(memory) == 3


def test_a_larger_page_evicts_as_many_as_it_needs():
    memory = PageMemory(4 * COST)
    for user in ("a", "b", "c", "d"):
        memory.put(key(user), PAGE, 1.0)
    large = b"x" * (2 * COST)
    memory.put(key("e"), large, 1.0)
    assert memory.bytes_held <= memory.max_bytes
    assert [memory.get(key(user)) is not None for user in "abcde"] == [False, False, False, True, True]


def test_a_newer_page_replaces_the_held_one_and_an_older_one_does_not():
    memory = PageMemory(10 * COST)
    memory.put(key("alice"), PAGE, 100.0)
    memory.put(key("alice"), b'{"items":[1]}', 200.0)
    memory.put(key("alice"), b'{"items":[0]}', 150.0)  # a read that finished late
    assert memory.get(key("alice")).body == b'{"items":[1]}'
    assert len(memory) == 1
    assert memory.bytes_held == len(b'{"items":[1]}') + ENTRY_OVERHEAD_BYTES


def test_a_page_larger_than_the_bound_is_not_kept_and_zero_turns_the_tier_off():
    memory = PageMemory(COST)
    memory.put(key("alice"), b"x" * (COST + 1), 1.0)
    assert memory.get(key("alice")) is None
    assert memory.bytes_held == 0
    off = PageMemory(0)
    off.put(key("alice"), PAGE, 1.0)
    assert off.get(key("alice")) is None


def test_discarding_frees_the_bytes():
    memory = PageMemory(10 * COST)
    memory.put(key("alice"), PAGE, 1.0)
    memory.discard(key("alice"))
    memory.discard(key("nobody"))
    assert memory.get(key("alice")) is None
    assert memory.bytes_held == 0


def test_a_negative_bound_is_refused():
    with pytest.raises(ValueError, match="max_bytes"):
        PageMemory(-1)
