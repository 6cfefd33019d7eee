"""Replication between the local regions, standing in for global tables and S3 replication.

    python -m tools.local_runtime.replication

LOCAL EMULATION ONLY. In AWS, DynamoDB global tables and S3 Cross-Region Replication do this;
the emulators have neither. One process reads every region's source-table streams and:
- settles each item by last writer wins: the change written last is the item's winner (region
  order breaks ties), and every region that holds something else is sent it. A global table decides
  by the time of each write; DynamoDB Local's stream records carry a time rounded down to the
  minute, so the replicator notes when it first read each record (it reads every region's streams
  every cycle, a down region's too, so that time is within a cycle of the write) and orders one
  region's records by sequence number (DynamoDB Local numbers a region's changes across its tables);
- recognises its own writes when they come back on the destination's stream (an "echo"), so a
  change crosses once rather than bouncing between regions;
- keeps what it still owes a region in an outbox while `make region-down` holds that region down,
  and pays it when the region is back, so nothing is lost;
- notes, from a region failure until everything is paid, whose timelines the changes it settles
  may change, and once the regions' consumers have caught up repairs those timelines in every
  region (OwedRepairs).
Media objects are copied to every other region's bucket once that region's media record says the
upload is ready (so a replica never outruns its record and gets judged as an unknown upload).
State lives in .local/replication.sqlite; figures (lag, outbox) in .local/replication-status.json.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import signal
import sqlite3
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from aviary import clients, naming
from aviary.media import READY, MediaStore, parse_media_key
from aviary.schema import MEDIA, SOURCE_OF_TRUTH_TABLES
from tools.local_aws.event_sources import Checkpoints, StreamPoller
from tools.local_runtime import timeline_repairs
from tools.local_runtime.settings import LocalSettings, load_local_settings

log = logging.getLogger("aviary.local.replication")

REPLICA_METADATA = "aviary-replicated-from"
LAG_SAMPLES = 1000
CYCLE_SECONDS = 0.2
# A cycle writes what is owed for at most this long before it reads the streams again: a write is
# timed by when it is first read, so a long cycle would time every write made meanwhile alike.
FLUSH_SECONDS = 0.5

ClientFor = Callable[[str, str], Any]  # (service, region) -> boto3 client


def _encode(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return {"__bytes__": base64.b64encode(bytes(value)).decode()}
    raise TypeError(f"cannot store {type(value).__name__}")


def _decode(mapping: dict[str, Any]) -> Any:
    return base64.b64decode(mapping["__bytes__"]) if mapping.keys() == {"__bytes__"} else mapping


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_encode)


def digest(image: dict[str, Any] | None) -> str:
    """Names an item's content (None: the item is absent), independent of attribute order."""
    return hashlib.sha256(dumps(image).encode()).hexdigest()


class ReplicationState:
    """What each item's winner is, what each region holds, which writes are ours, what is owed."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.executescript(
            """
            PRAGMA journal_mode=WAL;
            CREATE TABLE IF NOT EXISTS winners (tbl TEXT, item TEXT, ts REAL, origin TEXT, image TEXT,
                                                PRIMARY KEY (tbl, item));
            CREATE TABLE IF NOT EXISTS held (region TEXT, tbl TEXT, item TEXT, digest TEXT,
                                             PRIMARY KEY (region, tbl, item));
            CREATE TABLE IF NOT EXISTS echoes (region TEXT, tbl TEXT, item TEXT, digest TEXT,
                                               PRIMARY KEY (region, tbl, item, digest));
            CREATE TABLE IF NOT EXISTS outbox (region TEXT, tbl TEXT, item TEXT, queued REAL,
                                               PRIMARY KEY (region, tbl, item));
            CREATE TABLE IF NOT EXISTS copied (source TEXT, target TEXT, object_key TEXT,
                                               PRIMARY KEY (source, target, object_key));
            CREATE TABLE IF NOT EXISTS first_seen (region TEXT, sequence TEXT, ts REAL,
                                                   PRIMARY KEY (region, sequence));
            CREATE TABLE IF NOT EXISTS repairs_owed (mark TEXT PRIMARY KEY);
            CREATE TABLE IF NOT EXISTS flags (name TEXT PRIMARY KEY, value INTEGER);
            """
        )

    def first_seen(self, region: str, sequences: list[int], now: float) -> dict[int, float]:
        """When each record (by sequence number) of `region` was first read: now, for those new."""
        # Sequence numbers outgrow SQLite's integers: fixed-width text sorts the same way.
        keys = [f"{n:040d}" for n in sequences]
        self.db.executemany(
            "INSERT OR IGNORE INTO first_seen VALUES (?, ?, ?)", [(region, k, now) for k in keys]
        )
        marks = ",".join("?" * len(keys))
        rows = self.db.execute(
            f"SELECT sequence, ts FROM first_seen WHERE region=? AND sequence IN ({marks})", [region, *keys]
        ).fetchall()
        return {int(key): ts for key, ts in rows}

    def forget_seen(self, region: str, up_to: int) -> None:
        """Records up to `up_to` are settled: their first-read times are no longer needed."""
        self.db.execute("DELETE FROM first_seen WHERE region=? AND sequence<=?", (region, f"{up_to:040d}"))

    def winner(self, table: str, item: str) -> tuple[float, str, dict[str, Any] | None] | None:
        row = self.db.execute(
            "SELECT ts, origin, image FROM winners WHERE tbl=? AND item=?", (table, item)
        ).fetchone()
        if row is None:
            return None
        return row[0], row[1], None if row[2] is None else json.loads(row[2], object_hook=_decode)

    def set_winner(self, table: str, item: str, ts: float, origin: str, image: dict[str, Any] | None) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO winners VALUES (?, ?, ?, ?, ?)",
            (table, item, ts, origin, None if image is None else dumps(image)),
        )

    def held(self, region: str, table: str, item: str) -> str | None:
        row = self.db.execute(
            "SELECT digest FROM held WHERE region=? AND tbl=? AND item=?", (region, table, item)
        ).fetchone()
        return None if row is None else row[0]

    def set_held(self, region: str, table: str, item: str, content: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO held VALUES (?, ?, ?, ?)", (region, table, item, content))

    def expect_echo(self, region: str, table: str, item: str, content: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO echoes VALUES (?, ?, ?, ?)", (region, table, item, content))

    def take_echo(self, region: str, table: str, item: str, content: str) -> bool:
        cursor = self.db.execute(
            "DELETE FROM echoes WHERE region=? AND tbl=? AND item=? AND digest=?",
            (region, table, item, content),
        )
        return cursor.rowcount > 0

    def owe(self, region: str, table: str, item: str, order: float) -> None:
        self.db.execute("INSERT OR IGNORE INTO outbox VALUES (?, ?, ?, ?)", (region, table, item, order))

    def owed(self, regions: list[str]) -> list[tuple[str, str, str]]:
        marks = ",".join("?" * len(regions))
        return self.db.execute(
            f"SELECT region, tbl, item FROM outbox WHERE region IN ({marks}) ORDER BY queued", regions
        ).fetchall()

    def paid(self, region: str, table: str, item: str) -> None:
        self.db.execute("DELETE FROM outbox WHERE region=? AND tbl=? AND item=?", (region, table, item))

    def outbox_sizes(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT region, COUNT(*) FROM outbox GROUP BY region").fetchall())

    def owe_repair(self, mark: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO repairs_owed VALUES (?)", (mark,))

    def repairs_owed(self) -> list[str]:
        return [row[0] for row in self.db.execute("SELECT mark FROM repairs_owed ORDER BY mark")]

    def repaired(self, marks: list[str]) -> None:
        self.db.executemany("DELETE FROM repairs_owed WHERE mark=?", [(mark,) for mark in marks])

    def flag(self, name: str) -> bool:
        row = self.db.execute("SELECT value FROM flags WHERE name=?", (name,)).fetchone()
        return bool(row and row[0])

    def set_flag(self, name: str, value: bool) -> None:
        self.db.execute("INSERT OR REPLACE INTO flags VALUES (?, ?)", (name, int(value)))

    def was_copied(self, source: str, target: str, key: str) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM copied WHERE source=? AND target=? AND object_key=?", (source, target, key)
        ).fetchone()
        return row is not None

    def mark_copied(self, source: str, target: str, key: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO copied VALUES (?, ?, ?)", (source, target, key))


class TableReplication:
    """Last-writer-wins replication of the source-of-truth tables between `regions`."""

    def __init__(
        self,
        regions: tuple[str, ...],
        state: ReplicationState,
        client_for: ClientFor,
        *,
        is_up: Callable[[str], bool] = lambda _region: True,
        clock: Callable[[], float] = time.time,
        on_change: Callable[[str, dict[str, Any], dict[str, Any] | None], None] = lambda *_change: None,
    ) -> None:
        self.regions = regions
        self.state = state
        self.client_for = client_for
        self.is_up = is_up
        self.clock = clock
        self.on_change = on_change  # (table, keys, new image or None): told of every change settled
        self.lags: deque[float] = deque(maxlen=LAG_SAMPLES)
        self.applied = 0

    def consume_region(self, region: str, changes: list[tuple[str, dict[str, Any], float]]) -> None:
        """(table, record, time written) from `region`'s streams, in the order they happened there.

        Interleaving the tables in that order keeps cause before effect across tables (a follow
        before the tweets that should reach the new follower), which per-table order alone would not.
        """
        for table, record, written_at in changes:
            change = record["dynamodb"]
            item = dumps(change["Keys"])
            image = change.get("NewImage") if record["eventName"] != "REMOVE" else None
            content = digest(image)
            if self.state.take_echo(region, table, item, content):
                self.state.set_held(region, table, item, content)
                current = self.state.winner(table, item)
                if current is not None and digest(current[2]) != content:
                    # Our write landed over a newer one (written there before we got to it): the
                    # region now holds a loser and is owed the winner again.
                    self.state.owe(region, table, item, current[0])
                continue
            self._settle(region, table, item, written_at, image, content)
            self.on_change(table, change["Keys"], image)

    def _settle(
        self, region: str, table: str, item: str, ts: float, image: dict[str, Any] | None, content: str
    ) -> None:
        self.state.set_held(region, table, item, content)
        current = self.state.winner(table, item)
        # A region's own stream is in the order its writes happened: a later record from the same
        # region always wins (two changes in one transaction can share a millisecond).
        newer = (
            current is None
            or current[1] == region
            or (ts, self._rank(region)) > (current[0], self._rank(current[1]))
        )
        if newer:
            self.state.set_winner(table, item, ts, region, image)
            winning = content
        else:
            winning = digest(current[2])
        for other in self.regions:
            if self.state.held(other, table, item) != winning:
                # Owed in the order the changes happened, so they are paid in that order too.
                self.state.owe(other, table, item, ts)

    def _rank(self, region: str) -> int:
        # Ties (same timestamp) go to the region listed first, the same way everywhere.
        return -self.regions.index(region)

    def flush(self, budget_seconds: float | None = None) -> int:
        """Writes what is owed to every region that is up, in order, for at most `budget_seconds`
        (the rest stays owed for the next cycle); returns how many items were written."""
        up = [region for region in self.regions if self.is_up(region)]
        written = 0
        deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
        for region, table, item in self.state.owed(up) if up else []:
            if deadline is not None and time.monotonic() > deadline:
                break
            current = self.state.winner(table, item)
            if current is None:
                self.state.paid(region, table, item)
                continue
            ts, _origin, image = current
            content = digest(image)
            if self.state.held(region, table, item) == content:
                self.state.paid(region, table, item)
                continue
            self.state.expect_echo(region, table, item, content)
            dynamodb = self.client_for("dynamodb", region)
            try:
                if image is None:
                    deleted = dynamodb.delete_item(
                        TableName=table, Key=json.loads(item, object_hook=_decode), ReturnValues="ALL_OLD"
                    )
                    if "Attributes" not in deleted:
                        # Nothing was there to delete, so no stream record will come back for it.
                        self.state.take_echo(region, table, item, content)
                else:
                    dynamodb.put_item(TableName=table, Item=image)
            except (BotoCoreError, ClientError) as error:
                log.warning("could not write %s %s into %s (%s); will retry", table, item, region, error)
                self.state.take_echo(region, table, item, content)
                continue
            self.state.set_held(region, table, item, content)
            self.state.paid(region, table, item)
            self.lags.append(max(0.0, self.clock() - ts))
            written += 1
        self.applied += written
        return written


class OwedRepairs:
    """Timeline repairs owed after a region failure (tools/local_runtime/timeline_repairs.py).

    From the moment a region is down until every region is up, nothing is owed and a cycle found
    nothing to do, each change settled notes whose timeline it may change. Once that has passed and
    every region's stream consumers have caught up, those users' timelines are repaired in every
    region: what the consumers did or missed around the failure is made to match the source tables.
    """

    DEGRADED = "degraded"

    def __init__(
        self,
        regions: tuple[str, ...],
        state: ReplicationState,
        client_for: ClientFor,
        state_dir: Path,
        *,
        is_up: Callable[[str], bool] = lambda _region: True,
    ) -> None:
        self.regions = regions
        self.state = state
        self.client_for = client_for
        self.state_dir = state_dir
        self.is_up = is_up
        self.timelines_repaired = 0  # one per user and region
        self.calls: deque[int] = deque(maxlen=LAG_SAMPLES)

    def watch(self) -> None:
        """At the start of a cycle: a region down opens the window."""
        if not all(self.is_up(region) for region in self.regions):
            self.state.set_flag(self.DEGRADED, True)

    def note(self, table: str, keys: dict[str, Any], image: dict[str, Any] | None) -> None:
        if self.state.flag(self.DEGRADED):
            mark = timeline_repairs.touched_by(table, keys, image)
            if mark is not None:
                self.state.owe_repair(mark)

    def settle(self, busy: bool) -> int:
        """At the end of a cycle: closes the window once recovered and quiet, then repairs what is
        owed when the consumers have caught up; returns how many timelines it repaired."""
        recovered = all(self.is_up(region) for region in self.regions) and not any(
            self.state.outbox_sizes().values()
        )
        if not recovered:
            self.state.set_flag(self.DEGRADED, True)
            return 0
        if self.state.flag(self.DEGRADED):
            if not busy:
                self.state.set_flag(self.DEGRADED, False)
            return 0
        owed = self.state.repairs_owed()
        if not owed or any(
            timeline_repairs.consumers_behind(region, self.state_dir, self.client_for)
            for region in self.regions
        ):
            return 0
        users = timeline_repairs.users_to_repair(owed, self.regions, self.client_for)
        for region in self.regions:
            results = timeline_repairs.repair(region, users, self.client_for)
            self.calls.extend(result.calls for result in results)
            log.info(
                "repaired %d timelines in %s after a region failure: %d entries written, %d deleted",
                len(results),
                region,
                sum(r.written for r in results),
                sum(r.deleted for r in results),
            )
        self.state.repaired(owed)
        self.timelines_repaired += len(users) * len(self.regions)
        return len(users)

    def owed(self) -> int:
        return len(self.state.repairs_owed())

    def _consumers_behind(self, region: str) -> list[str]:
        return timeline_repairs.consumers_behind(region, self.state_dir, self.client_for)


class MediaReplication:
    """Copies ready media objects from each region's bucket to every other region's."""

    def __init__(
        self,
        regions: tuple[str, ...],
        account: str,
        state: ReplicationState,
        client_for: ClientFor,
        *,
        is_up: Callable[[str], bool] = lambda _region: True,
    ) -> None:
        self.regions = regions
        self.account = account
        self.state = state
        self.client_for = client_for
        self.is_up = is_up
        self.copied = 0

    def sync(self) -> int:
        copied = 0
        up = [region for region in self.regions if self.is_up(region)]
        for source in up:
            s3 = self.client_for("s3", source)
            bucket = naming.media_bucket_name(self.account, source)
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="media/"):
                for entry in page.get("Contents", []):
                    for target in up:
                        if target != source and self._copy(source, target, entry["Key"]):
                            copied += 1
        self.copied += copied
        return copied

    def _copy(self, source: str, target: str, key: str) -> bool:
        if self.state.was_copied(source, target, key) or self.state.was_copied(target, source, key):
            return False  # done already, or this object is itself a copy from `target`
        parsed = parse_media_key(key)
        if parsed is None:
            return False
        owner, media_id = parsed
        record = MediaStore(self.client_for("dynamodb", target), naming.table_name(MEDIA)).get(media_id)
        if record is None or record.status != READY or record.owner != owner:
            return False  # not ready here yet (or never will be): look again next cycle
        s3_source = self.client_for("s3", source)
        # Only the accepted version: a later PUT to the upload URL is not the media (aviary.media).
        version = {"VersionId": record.accepted_version} if record.accepted_version else {}
        original = s3_source.get_object(
            Bucket=naming.media_bucket_name(self.account, source), Key=key, **version
        )
        if original.get("Metadata", {}).get(REPLICA_METADATA):
            return False
        self.client_for("s3", target).put_object(
            Bucket=naming.media_bucket_name(self.account, target),
            Key=key,
            Body=original["Body"].read(),
            ContentType=original.get("ContentType", "application/octet-stream"),
            Metadata={REPLICA_METADATA: source},
        )
        self.state.mark_copied(source, target, key)
        return True


def status(
    tables: TableReplication, media: MediaReplication, repairs: OwedRepairs, state: ReplicationState
) -> dict[str, Any]:
    lags = sorted(tables.lags)
    calls = sorted(repairs.calls)
    return {
        "at": time.time(),
        "regions_up": [r for r in tables.regions if tables.is_up(r)],
        "items_written": tables.applied,
        "media_objects_copied": media.copied,
        "outbox": state.outbox_sizes(),
        "timeline_repairs_owed": repairs.owed(),
        "timelines_repaired": repairs.timelines_repaired,
        "repair_calls_per_timeline": {
            "median": statistics.median(calls) if calls else None,
            "max": calls[-1] if calls else None,
        },
        "lag_seconds": {
            "samples": len(lags),
            "median": statistics.median(lags) if lags else None,
            "p99": lags[min(len(lags) - 1, int(len(lags) * 0.99))] if lags else None,
            "max": lags[-1] if lags else None,
        },
    }


def sequence(record: dict[str, Any]) -> int:
    return int(record["dynamodb"]["SequenceNumber"])


def replicate_region(
    tables: TableReplication, region: str, streams: dict[str, StreamPoller], *, up: bool = True
) -> int:
    """Reads what is new on every source-table stream of `region`, notes when each record was first
    read, and (if the region is up) settles the records in the order they were written."""
    pages = {table: poller.read() for table, poller in streams.items()}
    # A full page may stop short of records another table's page goes past: settle only up to the
    # first such stop, so records of every table are settled in one order.
    horizon = min(
        (
            sequence(records[-1])
            for table, records in pages.items()
            if len(records) >= streams[table].page_size
        ),
        default=None,
    )
    changes = sorted(
        (
            (table, record)
            for table, records in pages.items()
            for record in records
            if horizon is None or sequence(record) <= horizon
        ),
        key=lambda change: sequence(change[1]),
    )
    if not changes:
        return 0
    seen = tables.state.first_seen(region, [sequence(record) for _, record in changes], tables.clock())
    if not up:
        return 0
    tables.consume_region(region, [(table, record, seen[sequence(record)]) for table, record in changes])
    for table in pages:
        settled = [record for each, record in changes if each == table]
        if settled:
            streams[table].commit(settled)
    tables.state.forget_seen(region, sequence(changes[-1][1]))
    return len(changes)


def run(settings: LocalSettings, stop: threading.Event) -> None:
    state = ReplicationState(settings.state_dir / "replication.sqlite")

    def client_for(service: str, region: str) -> Any:
        return clients.client(service, region=region)

    def is_up(region: str) -> bool:
        return not settings.is_down(region)

    repairs = OwedRepairs(settings.regions, state, client_for, settings.state_dir, is_up=is_up)
    tables = TableReplication(settings.regions, state, client_for, is_up=is_up, on_change=repairs.note)
    media = MediaReplication(
        settings.regions, settings.config.account, state, client_for, is_up=lambda r: not settings.is_down(r)
    )
    checkpoints = Checkpoints(settings.state_dir / "replication-checkpoints.json")
    pollers: dict[str, dict[str, StreamPoller]] = {}
    for region in settings.regions:
        pollers[region] = {}
        for schema in SOURCE_OF_TRUTH_TABLES:
            table = naming.table_name(schema)
            stream_arn = client_for("dynamodb", region).describe_table(TableName=table)["Table"][
                "LatestStreamArn"
            ]
            pollers[region][table] = StreamPoller(
                client_for("dynamodbstreams", region),
                stream_arn,
                region=region,
                name=f"{region}/{table}",
                checkpoints=checkpoints,
            )
    status_path = settings.state_dir / "replication-status.json"
    while not stop.is_set():
        busy = 0
        try:
            repairs.watch()
            for region, streams in pollers.items():
                # A region that is down is still read, only to note when its last writes were made.
                busy += replicate_region(tables, region, streams, up=not settings.is_down(region))
            busy += tables.flush(FLUSH_SECONDS)
            busy += media.sync()
            busy += repairs.settle(busy > 0)
        except (BotoCoreError, ClientError) as error:
            log.warning("replication cycle failed (%s); retrying", error)
        status_path.write_text(json.dumps(status(tables, media, repairs, state), indent=1))
        if not busy:
            stop.wait(CYCLE_SECONDS)


def main() -> None:
    logging.getLogger("botocore").setLevel(logging.WARNING)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s replication %(levelname)s %(message)s")
    settings = load_local_settings()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    run(settings, stop)


if __name__ == "__main__":
    main()
