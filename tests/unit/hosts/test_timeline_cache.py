"""The SQLite page cache: ages, keys, WAL, and that damage or loss only costs a miss."""

from __future__ import annotations

import sqlite3
import threading

from hosts.timeline_service.cache import PAGE_FORMAT, TimelineCache

PAGE = {"items": [{"id": "01JD0000000000000000000001", "text": "héllo"}], "next_cursor": None}


def test_a_stored_page_comes_back_with_its_age(tmp_path):
    cache = TimelineCache(tmp_path / "cache.sqlite")
    cache.put("alice", None, 20, PAGE, fetched_at=100.0)
    assert cache.get("alice", None, 20, now=103.5) == (PAGE, 3.5)


def test_pages_are_keyed_by_user_cursor_and_limit(tmp_path):
    cache = TimelineCache(tmp_path / "cache.sqlite")
    cache.put("alice", None, 20, PAGE, fetched_at=100.0)
    cache.put(
        "alice", "2026-11-21T19:45:14.123Z#01JD0000000000000000000001", 20, {"items": []}, fetched_at=100.0
    )
    assert cache.get("bob", None, 20, now=100.0) is None
    assert cache.get("alice", None, 10, now=100.0) is None
    assert cache.get("alice", "", 20, now=100.0) == (PAGE, 0.0)  # "" and None both mean the first page
    assert cache.get("alice", "2026-11-21T19:45:14.123Z#01JD0000000000000000000001", 20, now=100.0)[0] == {
        "items": []
    }


def test_a_newer_page_replaces_the_older(tmp_path):
    cache = TimelineCache(tmp_path / "cache.sqlite")
    cache.put("alice", None, 20, {"items": [], "next_cursor": None}, fetched_at=100.0)
    cache.put("alice", None, 20, PAGE, fetched_at=200.0)
    assert cache.get("alice", None, 20, now=201.0) == (PAGE, 1.0)


def test_pages_older_than_max_age_are_not_served_and_get_pruned(tmp_path):
    cache = TimelineCache(tmp_path / "cache.sqlite", max_age_seconds=60, prune_every_puts=2)
    cache.put("alice", None, 20, PAGE, fetched_at=100.0)
    assert cache.get("alice", None, 20, now=161.0) is None
    cache.put("bob", None, 20, PAGE, fetched_at=200.0)  # second put: prunes what is older than 140
    rows = sqlite3.connect(tmp_path / "cache.sqlite").execute("SELECT user_id FROM pages").fetchall()
    assert rows == [("bob",)]


def test_pages_cached_in_another_format_are_dropped_and_pages_of_this_one_kept(tmp_path):
    path = tmp_path / "cache.sqlite"
    TimelineCache(path).put("alice", None, 20, PAGE, fetched_at=100.0)
    assert TimelineCache(path).get("alice", None, 20, now=101.0) == (PAGE, 1.0)  # same format: kept

    # A file written before timeline items were named as tweets are (format 0: no version set).
    with sqlite3.connect(path) as older:
        older.execute("PRAGMA user_version=0")
    assert TimelineCache(path).get("alice", None, 20, now=101.0) is None
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == PAGE_FORMAT


def test_the_file_uses_wal(tmp_path):
    TimelineCache(tmp_path / "cache.sqlite")
    mode = sqlite3.connect(tmp_path / "cache.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_a_missing_directory_is_created(tmp_path):
    cache = TimelineCache(tmp_path / "not" / "yet" / "cache.sqlite")
    cache.put("alice", None, 20, PAGE, fetched_at=1.0)
    assert cache.get("alice", None, 20, now=1.0) == (PAGE, 0.0)


def test_a_corrupt_file_is_replaced_at_start(tmp_path):
    path = tmp_path / "cache.sqlite"
    path.write_bytes(b"this is not an sqlite database" * 100)
    cache = TimelineCache(path)
    assert cache.available
    assert cache.get("alice", None, 20) is None
    cache.put("alice", None, 20, PAGE, fetched_at=1.0)
    assert cache.get("alice", None, 20, now=1.0) == (PAGE, 0.0)


def test_a_file_corrupted_while_open_is_replaced_on_next_use(tmp_path):
    path = tmp_path / "cache.sqlite"
    cache = TimelineCache(path)
    cache.put("alice", None, 20, PAGE, fetched_at=1.0)
    cache.close()
    for suffix in ("", "-wal", "-shm"):
        target = tmp_path / f"cache.sqlite{suffix}"
        if target.exists():
            target.write_bytes(b"\x00garbage" * 4096)
    assert cache.get("alice", None, 20, now=1.0) is None  # a miss, not an exception
    cache.put("alice", None, 20, PAGE, fetched_at=2.0)
    assert cache.get("alice", None, 20, now=2.0) == (PAGE, 0.0)


def test_a_file_deleted_while_open_is_recreated(tmp_path):
    path = tmp_path / "cache.sqlite"
    cache = TimelineCache(path)
    cache.put("alice", None, 20, PAGE, fetched_at=1.0)
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"cache.sqlite{suffix}").unlink(missing_ok=True)
    cache.put("bob", None, 20, PAGE, fetched_at=1.0)
    assert path.exists()
    reopened = TimelineCache(path)
    assert reopened.get("bob", None, 20, now=1.0) == (PAGE, 0.0)


def test_an_unusable_location_disables_the_cache_instead_of_failing(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    cache = TimelineCache(blocker / "cache.sqlite")
    assert not cache.available
    cache.put("alice", None, 20, PAGE)
    assert cache.get("alice", None, 20) is None


def test_threads_can_read_and_write_at_once(tmp_path):
    cache = TimelineCache(tmp_path / "cache.sqlite")
    failures: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for n in range(100):
                cache.put(f"user{worker}", None, n % 5 + 1, {"n": n}, fetched_at=float(n))
                hit = cache.get(f"user{worker}", None, n % 5 + 1, now=float(n))
                assert hit is None or hit[0] == {"n": n}
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert cache.get("user3", None, 5, now=99.0) == ({"n": 99}, 0.0)


def test_a_page_can_be_stored_and_served_as_json_text(tmp_path):
    cache = TimelineCache(tmp_path / "cache.sqlite")
    cache.put_json("alice", None, 20, '{"items":[],"next_cursor":null}', fetched_at=10.0)
    assert cache.get_json("alice", None, 20, now=12.0) == ('{"items":[],"next_cursor":null}', 2.0)
    assert cache.get("alice", None, 20, now=12.0) == ({"items": [], "next_cursor": None}, 2.0)


# -- one file, several worker processes (each with its own TimelineCache) --------------------------------


def test_workers_share_the_file(tmp_path):
    first, second = TimelineCache(tmp_path / "cache.sqlite"), TimelineCache(tmp_path / "cache.sqlite")
    first.put("alice", None, 20, PAGE, fetched_at=1.0)
    assert second.get("alice", None, 20, now=1.0) == (PAGE, 0.0)


def test_workers_starting_together_all_open_the_same_file(tmp_path):
    path = tmp_path / "cache.sqlite"
    start = threading.Barrier(6)
    caches: list[TimelineCache] = []

    def open_cache() -> None:
        start.wait()
        caches.append(TimelineCache(path))

    threads = [threading.Thread(target=open_cache) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(cache.available for cache in caches)
    caches[0].put("alice", None, 20, PAGE, fetched_at=1.0)
    assert [cache.get("alice", None, 20, now=1.0) for cache in caches] == [(PAGE, 0.0)] * 6


def test_a_worker_follows_a_file_another_worker_replaced_instead_of_deleting_it(tmp_path):
    path = tmp_path / "cache.sqlite"
    first, second = TimelineCache(path), TimelineCache(path)
    first.put("alice", None, 20, PAGE, fetched_at=1.0)
    assert second.get("alice", None, 20, now=1.0) is not None  # its connection is open on the file
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"cache.sqlite{suffix}").unlink(missing_ok=True)  # the disks were lost
    first.put("bob", None, 20, PAGE, fetched_at=2.0)  # the first worker starts a new file
    second.put("carol", None, 20, PAGE, fetched_at=3.0)  # the second must write into that one
    reopened = TimelineCache(path)
    assert reopened.get("bob", None, 20, now=3.0) == (PAGE, 1.0)
    assert reopened.get("carol", None, 20, now=3.0) == (PAGE, 0.0)
    assert first.get("carol", None, 20, now=3.0) == (PAGE, 0.0)


def test_a_file_locked_past_the_start_timeout_is_left_alone(tmp_path, monkeypatch):
    # Another worker creating the file holds it locked while it turns on WAL and adds the table.
    path = tmp_path / "cache.sqlite"
    creator = TimelineCache(path)
    creator.put("alice", None, 20, PAGE, fetched_at=1.0)
    creator.close()
    sqlite3.connect(path, isolation_level=None).execute("PRAGMA journal_mode=DELETE").fetchone()
    monkeypatch.setattr("hosts.timeline_service.cache.PREPARE_BUSY_TIMEOUT_SECONDS", 0.05)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        locked_out = TimelineCache(path)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert not locked_out.available  # serves without the cache rather than deleting a busy file
    assert TimelineCache(path).get("alice", None, 20, now=1.0) == (PAGE, 0.0)
