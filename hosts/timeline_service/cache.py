"""The host's disposable timeline cache: an SQLite file on the instance-store disks.

It lets a host answer from memory of recent pages while DynamoDB is slow or down, and it is
shared by the host's worker processes and survives their restarts. Losing it costs only
warm-up, so a corrupt or missing file is replaced rather than repaired.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from aviary.host_settings import DEFAULT_CACHE_PATH

log = logging.getLogger(__name__)

# In the directory the systemd unit makes writable for the service (ReadWritePaths).
DEFAULT_PATH = DEFAULT_CACHE_PATH
# The shape of the pages stored (SQLite's user_version of the file). Pages are the API's JSON, so a
# page cached in an older shape must never be served: a file of another format starts empty.
# 2: timeline items name their fields as tweets do (id, author, not tweet_id, author_id).
# 3: items (and a retweet's original) carry media_urls beside media_ids.
PAGE_FORMAT = 3
# How long opening the file may wait for another worker that is opening it at the same moment.
PREPARE_BUSY_TIMEOUT_SECONDS = 5.0

_SCHEMA = (
    # The empty string stands for "no cursor": NULLs would never match in the primary key.
    """CREATE TABLE IF NOT EXISTS pages (
        user_id TEXT NOT NULL,
        cursor TEXT NOT NULL,
        page_limit INTEGER NOT NULL,
        page TEXT NOT NULL,
        fetched_at REAL NOT NULL,
        PRIMARY KEY (user_id, cursor, page_limit)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS pages_by_age ON pages (fetched_at)",
)


class TimelineCache:
    """Pages keyed by (user, cursor, limit) with the time they were read from DynamoDB.

    Each thread gets its own connection, and each worker process its own TimelineCache on the
    same file (WAL lets them read while one writes). Any cache failure is a miss, never an error
    for the caller.
    """

    def __init__(
        self,
        path: str | Path = DEFAULT_PATH,
        *,
        max_age_seconds: float = 24 * 3600,
        prune_every_puts: int = 1000,
        busy_timeout_seconds: float = 0.1,
    ) -> None:
        self.path = Path(path)
        self.max_age_seconds = max_age_seconds
        self.prune_every_puts = prune_every_puts
        self.busy_timeout_seconds = busy_timeout_seconds
        self._local = threading.local()
        self._lock = threading.Lock()
        self._generation = 0  # bumped when the file is replaced: every thread then reconnects
        self._inode: int | None = None  # of the file this object's connections use
        self._puts = 0
        self.available = False
        with self._lock:
            self._prepare_file()

    def get(
        self, user_id: str, cursor: str | None, limit: int, *, now: float | None = None
    ) -> tuple[Any, float] | None:
        """(page, age in seconds) of the cached page, or None when there is none younger than max age."""
        found = self.get_json(user_id, cursor, limit, now=now)
        if found is None:
            return None
        try:
            return json.loads(found[0]), found[1]
        except ValueError:
            return None

    def get_json(
        self, user_id: str, cursor: str | None, limit: int, *, now: float | None = None
    ) -> tuple[str, float] | None:
        """Like get(), with the page as the JSON text stored: a host replies with it as it is."""
        now = time.time() if now is None else now
        row = self._run(
            "SELECT page, fetched_at FROM pages WHERE user_id = ? AND cursor = ? AND page_limit = ?",
            (user_id, cursor or "", limit),
        )
        if row is None:
            return None
        page_json, fetched_at = row
        age = max(0.0, now - fetched_at)
        return None if age > self.max_age_seconds else (page_json, age)

    def put(
        self, user_id: str, cursor: str | None, limit: int, page: Any, *, fetched_at: float | None = None
    ) -> None:
        page_json = json.dumps(page, separators=(",", ":"))
        self.put_json(user_id, cursor, limit, page_json, fetched_at=fetched_at)

    def put_json(
        self, user_id: str, cursor: str | None, limit: int, page_json: str, *, fetched_at: float | None = None
    ) -> None:
        """Like put(), for a page already serialised (the reply's own text)."""
        fetched_at = time.time() if fetched_at is None else fetched_at
        self._run(
            "INSERT OR REPLACE INTO pages (user_id, cursor, page_limit, page, fetched_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (user_id, cursor or "", limit, page_json, fetched_at),
        )
        with self._lock:
            self._puts += 1
            prune = self._puts % self.prune_every_puts == 0
        if prune:
            self.prune(older_than=fetched_at - self.max_age_seconds)

    def holds_servable_pages(self, *, now: float | None = None) -> bool:
        """Whether any page is young enough to be served (stale, if DynamoDB does not answer)."""
        now = time.time() if now is None else now
        return (
            self._run("SELECT 1 FROM pages WHERE fetched_at >= ? LIMIT 1", (now - self.max_age_seconds,))
            is not None
        )

    def prune(self, *, older_than: float) -> None:
        """Drop pages read before `older_than`: nobody would be served them, and the disk is finite."""
        self._run("DELETE FROM pages WHERE fetched_at < ?", (older_than,))

    def close(self) -> None:
        """Close this thread's connection (each thread's closes with it otherwise)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def _run(self, sql: str, parameters: tuple[Any, ...]) -> Any:
        """Execute one statement; the first row for a SELECT. Failures are logged and read as a miss."""
        if not self.available:
            return None
        self._follow_file()
        generation = self._generation
        try:
            return self._connection(generation).execute(sql, parameters).fetchone()
        except sqlite3.DatabaseError as error:
            if _busy(error):
                # Another writer holds the file for a moment. Not damage.
                log.debug("Timeline cache busy: %s", error)
                return None
            self._replace_file(generation, error)
        return None

    def _follow_file(self) -> None:
        """Keep using the file at self.path: it may have been deleted (the disks were lost) or
        replaced by another worker that found it damaged, and statements on the old one would
        go to a file no other worker, nor this one after a restart, can see."""
        generation = self._generation
        try:
            inode = _inode_of(self.path)
        except OSError:
            return  # unreadable for a moment: the statement itself will tell
        if inode != self._inode:
            self._replace_file(generation, FileNotFoundError(self.path))

    def _connection(self, generation: int) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is not None and self._local.generation == generation:
            return connection
        if connection is not None:
            connection.close()
        connection = self._connect()
        self._local.connection = connection
        self._local.generation = generation
        return connection

    def _connect(self, busy_timeout_seconds: float | None = None) -> sqlite3.Connection:
        # Autocommit: every statement is its own transaction, so nothing is left open between calls.
        timeout = self.busy_timeout_seconds if busy_timeout_seconds is None else busy_timeout_seconds
        connection = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        # NORMAL with WAL cannot corrupt the file; a crash may lose the last writes, which is fine here.
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    def _prepare_file(self) -> None:
        """Open (creating if missing) and check the file; replace it once if it is not a usable cache."""
        for attempt in (1, 2):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                connection = self._connect(PREPARE_BUSY_TIMEOUT_SECONDS)
                try:
                    # WAL is a property of the file: set once here, every later connection uses it.
                    mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                    if mode.lower() != "wal":
                        raise sqlite3.DatabaseError(f"journal mode stayed {mode}")
                    for statement in _SCHEMA:
                        connection.execute(statement)
                    if connection.execute("PRAGMA user_version").fetchone()[0] != PAGE_FORMAT:
                        connection.execute("DELETE FROM pages")
                        connection.execute(f"PRAGMA user_version={PAGE_FORMAT}")
                    connection.execute("SELECT 1 FROM pages LIMIT 1").fetchall()
                    self._inode = _inode_of(self.path)
                finally:
                    connection.close()
                self.available = True
                return
            except (sqlite3.DatabaseError, OSError) as error:
                if _busy(error):
                    # Another worker held the file all that time: not damage, and not to be deleted.
                    log.error("Timeline cache at %s stayed locked, serving without it: %s", self.path, error)
                    self.available = False
                    return
                if attempt == 2:
                    log.error("Timeline cache at %s is unusable, serving without it: %s", self.path, error)
                    self.available = False
                    return
                log.warning("Timeline cache at %s is damaged (%s); starting a new one", self.path, error)
                self._delete_files()

    def _replace_file(self, generation: int, error: Exception) -> None:
        with self._lock:
            if generation != self._generation:
                return  # another thread has already replaced it
            try:
                inode = _inode_of(self.path)
            except OSError:
                inode = None
            if inode is not None and inode != self._inode:
                # Another worker has put a new file in place already: use it, never delete it.
                log.info("Timeline cache at %s was replaced by another process; reopening", self.path)
                self.close()
                self._generation += 1
                self._inode = inode
                return
            log.warning("Timeline cache at %s failed (%s); starting a new one", self.path, error)
            self.close()
            self._delete_files()
            self._generation += 1
            self._prepare_file()

    def _delete_files(self) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            except OSError as error:
                log.warning("Could not delete %s%s: %s", self.path, suffix, error)


def _inode_of(path: Path) -> int | None:
    """The inode of the file at `path`, None when there is none: it tells one file from its replacement."""
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def _busy(error: Exception) -> bool:
    return isinstance(error, sqlite3.OperationalError) and ("locked" in str(error) or "busy" in str(error))
