"""Two regions on DynamoDB Local, replicated by the local runtime's replicator, each with its own stream
consumers: for tests of what must converge when regions write the same things concurrently.

Writes are followed by `observe()`, which notes when the replicator first saw them (its cycle reads
every stream continuously); `settle()` then replicates and runs every region's consumers until idle.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from aviary.naming import table_name
from aviary.schema import SOURCE_OF_TRUTH_TABLES, TableSchema
from tests.dynamodb_local import DynamoDBLocal
from tools.local_aws.event_sources import Checkpoints, StreamPoller
from tools.local_aws.tables import create_table
from tools.local_runtime.replication import ReplicationState, TableReplication, replicate_region

REGIONS = ("us-east-1", "us-west-2")
SETTLE_CYCLES = 20

# A consumer of one region's stream of one table: called with each record, as Lambda would.
Consumer = Callable[[dict[str, Any]], Any]


class TwoRegions:
    def __init__(self, database: DynamoDBLocal, work: Path, derived: Iterable[TableSchema] = ()) -> None:
        self.work = work
        self.now = 1_795_000_000.0
        self.dynamodb = {r: database.client("dynamodb", r) for r in REGIONS}
        self.streams = {r: database.client("dynamodbstreams", r) for r in REGIONS}
        self.stream_arns: dict[tuple[str, str], str] = {}
        for region in REGIONS:
            # Locally every source table streams, as a global table's replicas do.
            for schema in SOURCE_OF_TRUTH_TABLES:
                name = create_table(self.dynamodb[region], dataclasses.replace(schema, streamed=True))
                table = self.dynamodb[region].describe_table(TableName=name)["Table"]
                self.stream_arns[region, name] = table["LatestStreamArn"]
            for schema in derived:
                create_table(self.dynamodb[region], schema)
        self.down: set[str] = set()
        self.replication = TableReplication(
            REGIONS,
            ReplicationState(work / "replication.sqlite"),
            lambda service, region: (self.dynamodb if service == "dynamodb" else self.streams)[region],
            is_up=lambda region: region not in self.down,
            clock=lambda: self.now,
        )
        checkpoints = Checkpoints(work / "replication-checkpoints.json")
        self.replicated = {
            region: {
                table: self._poller(region, table, f"replication/{region}/{table}", checkpoints)
                for (each, table) in self.stream_arns
                if each == region
            }
            for region in REGIONS
        }
        self.consumers: list[tuple[str, StreamPoller]] = []

    def _poller(
        self, region: str, table: str, name: str, checkpoints: Checkpoints, **kwargs: Any
    ) -> StreamPoller:
        return StreamPoller(
            self.streams[region],
            self.stream_arns[region, table],
            region=region,
            name=name,
            checkpoints=checkpoints,
            **kwargs,
        )

    def consume(self, schema: TableSchema, consumer_for: Callable[[str], Consumer]) -> None:
        """In every region, `consumer_for(region)` gets each record of that region's stream of `schema`."""
        checkpoints = Checkpoints(self.work / f"consumers-{schema.role}.json")
        for region in REGIONS:
            consumer = consumer_for(region)
            poller = self._poller(
                region,
                table_name(schema),
                f"{schema.role}/{region}",
                checkpoints,
                consume=lambda records, consumer=consumer: [consumer(record) for record in records],
            )
            self.consumers.append((region, poller))

    def observe(self) -> None:
        """The replicator's continuous read: note when each new write was made (the clock moves on)."""
        self.now += 1
        for region in REGIONS:
            replicate_region(self.replication, region, self.replicated[region], up=False)

    def settle(self) -> None:
        for _ in range(SETTLE_CYCLES):
            self.now += 1
            busy = 0
            for region in REGIONS:
                up = region not in self.down
                busy += replicate_region(self.replication, region, self.replicated[region], up=up)
            busy += self.replication.flush()
            busy += sum(poller.poll_once() for region, poller in self.consumers if region not in self.down)
            if not busy:
                return
        raise AssertionError(f"the regions did not settle in {SETTLE_CYCLES} cycles")

    def scan(self, region: str, schema: TableSchema) -> list[dict[str, Any]]:
        return self.dynamodb[region].scan(TableName=table_name(schema), ConsistentRead=True)["Items"]
