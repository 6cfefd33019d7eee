"""Local replication between two regions of DynamoDB Local: last writer wins, no echoes, outbox,
restarts, order across tables; media (over moto's S3)."""

from __future__ import annotations

import dataclasses
from typing import Any

import boto3
import pytest
from moto import mock_aws

from aviary import naming
from aviary.clients import AWS_CONFIG
from aviary.ids import generate_ulid
from aviary.keys import follows_sk, media_object_key, user_pk
from aviary.media import MediaStore
from aviary.schema import MEDIA, SOCIAL_GRAPH, TWEETS
from tools.local_aws.event_sources import Checkpoints, StreamPoller
from tools.local_aws.tables import create_table
from tools.local_runtime.replication import (
    REPLICA_METADATA,
    MediaReplication,
    ReplicationState,
    TableReplication,
    replicate_region,
)

REGIONS = ("us-east-1", "us-west-2")
EAST, WEST = REGIONS
ACCOUNT = "123456789012"  # moto's account, which is also the local stage's
GRAPH = naming.table_name(SOCIAL_GRAPH)
# Locally every source-of-truth table streams, as a global table's replicas do.
TABLES = (dataclasses.replace(SOCIAL_GRAPH, streamed=True), TWEETS)


class Clock:
    """The replicator's clock: a write's time is when the replicator first read it."""

    def __init__(self) -> None:
        self.now = 1_795_000_000.0

    def __call__(self) -> float:
        return self.now


def key(follower: str, followee: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": user_pk(follower)}, "sk": {"S": follows_sk(followee)}}


ALICE_BOB = key("alice", "bob")


class WriteLog:
    """Passes calls to a DynamoDB client and notes the table of each write, in order."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.writes: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.client, name)
        if name not in ("put_item", "delete_item"):
            return attribute

        def write(**request: Any) -> Any:
            self.writes.append(request["TableName"])
            return attribute(**request)

        return write


class Regions:
    """Two source tables in both regions, and a replicator reading their streams as run() does.

    Every write is followed by a read of every stream that settles nothing (`observe`), as the
    replicator's own cycle reads them continuously, so each write's time is the clock's at that write.
    """

    def __init__(self, database: Any, tmp_path: Any, clock: Clock) -> None:
        self.tmp_path = tmp_path
        self.clock = clock
        self.dynamodb = {r: database.client("dynamodb", r) for r in REGIONS}
        self.streams = {r: database.client("dynamodbstreams", r) for r in REGIONS}
        self.stream_arns: dict[tuple[str, str], str] = {}
        for region in REGIONS:
            for schema in TABLES:
                name = create_table(self.dynamodb[region], schema)
                described = self.dynamodb[region].describe_table(TableName=name)["Table"]
                self.stream_arns[region, name] = described["LatestStreamArn"]
        self.replica_writes = {r: WriteLog(self.dynamodb[r]) for r in REGIONS}
        self.down: set[str] = set()
        self.start()

    def client_for(self, service: str, region: str) -> Any:
        return {"dynamodb": self.replica_writes, "dynamodbstreams": self.streams}[service][region]

    def start(self) -> None:
        """A replication process: new objects over the state and checkpoint files on disk."""
        self.state = ReplicationState(self.tmp_path / "replication.sqlite")
        self.replication = TableReplication(
            REGIONS, self.state, self.client_for, is_up=lambda r: r not in self.down, clock=self.clock
        )
        checkpoints = Checkpoints(self.tmp_path / "replication-checkpoints.json")
        self.pollers = {
            region: {
                table: StreamPoller(
                    self.streams[region],
                    self.stream_arns[region, table],
                    region=region,
                    name=f"{region}/{table}",
                    checkpoints=checkpoints,
                )
                for (each, table) in self.stream_arns
                if each == region
            }
            for region in REGIONS
        }

    def restart(self) -> None:
        self.state.db.close()
        self.start()

    def poll(self, *only: str) -> int:
        return sum(
            replicate_region(self.replication, region, self.pollers[region], up=region not in self.down)
            for region in only or REGIONS
        )

    def observe(self) -> None:
        for region in REGIONS:
            replicate_region(self.replication, region, self.pollers[region], up=False)

    def cycle(self) -> int:
        busy = self.poll()
        return busy + self.replication.flush()

    def settle(self) -> None:
        for _ in range(10):
            if self.cycle() == 0:
                return
        raise AssertionError("replication did not settle in 10 cycles")

    def put(
        self,
        region: str,
        item_key: dict[str, Any],
        *,
        table: str = GRAPH,
        tick: bool = True,
        **attributes: str,
    ) -> None:
        self.clock.now += 1 if tick else 0
        item = {**item_key, **{name: {"S": value} for name, value in attributes.items()}}
        self.dynamodb[region].put_item(TableName=table, Item=item)
        self.observe()

    def delete(self, region: str, item_key: dict[str, Any]) -> None:
        self.clock.now += 1
        self.dynamodb[region].delete_item(TableName=GRAPH, Key=item_key)
        self.observe()

    def item(self, region: str, item_key: dict[str, Any], table: str = GRAPH) -> dict[str, Any] | None:
        return self.dynamodb[region].get_item(TableName=table, Key=item_key, ConsistentRead=True).get("Item")

    def written(self, region: str, table: str = GRAPH) -> list[tuple[str, str | None]]:
        """Every change the region's table has seen (its whole stream): event name and `via` attribute."""
        stream_arn = self.stream_arns[region, table]
        streams = self.streams[region]
        shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        return [
            (r["eventName"], r["dynamodb"].get("NewImage", {}).get("via", {}).get("S"))
            for r in streams.get_records(ShardIterator=iterator)["Records"]
        ]


@pytest.fixture
def regions(dynamodb_local, tmp_path):
    return Regions(dynamodb_local, tmp_path, Clock())


def test_a_write_crosses_once_and_its_echo_does_not_come_back(regions):
    regions.put(EAST, ALICE_BOB, via="east")

    regions.settle()

    assert (
        regions.item(WEST, ALICE_BOB) == regions.item(EAST, ALICE_BOB) == {**ALICE_BOB, "via": {"S": "east"}}
    )
    assert regions.written(WEST) == [("INSERT", "east")]
    assert regions.written(EAST) == [("INSERT", "east")]  # the replica's own stream record did not bounce
    assert regions.replication.applied == 1
    assert regions.state.outbox_sizes() == {}


@pytest.mark.parametrize(("first", "later"), [(EAST, WEST), (WEST, EAST)])
def test_concurrent_writes_to_one_item_converge_on_the_later_one_everywhere(regions, first, later):
    regions.put(first, ALICE_BOB, via=first)
    regions.put(later, ALICE_BOB, via=later)  # one second later, before replication saw either

    regions.settle()

    for region in REGIONS:
        assert regions.item(region, ALICE_BOB) == {**ALICE_BOB, "via": {"S": later}}
    assert regions.written(later) == [("INSERT", later)]
    assert regions.written(first) == [("INSERT", first), ("MODIFY", later)]


def test_writes_with_the_same_timestamp_go_to_the_region_listed_first(regions):
    regions.put(WEST, ALICE_BOB, via=WEST)
    regions.put(EAST, ALICE_BOB, via=EAST, tick=False)

    regions.settle()

    for region in REGIONS:
        assert regions.item(region, ALICE_BOB) == {**ALICE_BOB, "via": {"S": EAST}}
    assert regions.written(EAST) == [("INSERT", EAST)]


@pytest.mark.parametrize("deleted_in", REGIONS)
def test_a_delete_replicates_once(regions, deleted_in):
    regions.put(EAST, ALICE_BOB, via="east")
    regions.settle()

    regions.delete(deleted_in, ALICE_BOB)
    regions.settle()

    assert regions.item(EAST, ALICE_BOB) is None
    assert regions.item(WEST, ALICE_BOB) is None
    for region in REGIONS:
        assert regions.written(region) == [("INSERT", "east"), ("REMOVE", None)]


def test_a_region_that_is_down_gets_nothing_and_is_paid_from_the_outbox_when_back(regions):
    alice_carol = key("alice", "carol")
    regions.down.add(WEST)
    regions.put(EAST, ALICE_BOB, via="first")
    regions.put(EAST, alice_carol, via="east")
    regions.put(EAST, ALICE_BOB, via="second")

    regions.settle()

    assert regions.written(WEST) == []
    assert regions.state.outbox_sizes() == {WEST: 2}

    regions.down.clear()
    regions.settle()

    assert regions.item(WEST, ALICE_BOB) == {**ALICE_BOB, "via": {"S": "second"}}
    assert regions.item(WEST, alice_carol) == {**alice_carol, "via": {"S": "east"}}
    # The outbox pays each item's winner once, not every version it missed.
    assert sorted(regions.written(WEST)) == [("INSERT", "east"), ("INSERT", "second")]
    assert len(regions.written(EAST)) == 3
    assert regions.state.outbox_sizes() == {}


@pytest.mark.parametrize("stopped_after", ["consuming", "writing the replica"])
def test_a_restarted_replicator_carries_on_from_its_state(regions, stopped_after):
    regions.put(EAST, ALICE_BOB, via="east")
    regions.poll(EAST)
    if stopped_after == "writing the replica":
        assert regions.replication.flush() == 1

    regions.restart()
    regions.settle()

    assert regions.item(WEST, ALICE_BOB) == {**ALICE_BOB, "via": {"S": "east"}}
    assert regions.written(WEST) == [("INSERT", "east")]
    assert regions.written(EAST) == [("INSERT", "east")]


def test_a_regions_later_write_wins_over_its_own_earlier_one_in_the_same_instant(regions):
    regions.put(EAST, ALICE_BOB, via="first")
    regions.put(EAST, ALICE_BOB, via="second", tick=False)  # e.g. two changes of one transaction

    regions.settle()

    assert regions.item(WEST, ALICE_BOB) == {**ALICE_BOB, "via": {"S": "second"}}


def test_a_region_that_was_down_is_paid_in_the_order_the_changes_happened_across_tables(regions):
    regions.down.add(WEST)
    regions.put(EAST, {"tweet_id": {"S": "t-1"}}, table=naming.table_name(TWEETS), via="before")
    regions.put(EAST, ALICE_BOB, via="follow")
    regions.put(EAST, {"tweet_id": {"S": "t-2"}}, table=naming.table_name(TWEETS), via="after")
    regions.settle()
    assert regions.replica_writes[WEST].writes == []

    regions.down.clear()
    regions.settle()

    tweets = naming.table_name(TWEETS)
    assert regions.replica_writes[WEST].writes == [tweets, GRAPH, tweets]
    assert regions.item(WEST, {"tweet_id": {"S": "t-2"}}, tweets) == {
        "tweet_id": {"S": "t-2"},
        "via": {"S": "after"},
    }


def test_a_later_local_write_that_lands_while_the_replica_is_written_still_wins_everywhere(regions):
    regions.put(WEST, ALICE_BOB, via="west")
    regions.poll()  # the replicator now owes east west's write...
    regions.put(EAST, ALICE_BOB, via="east")  # ...when a later write lands in east
    regions.replication.flush()  # and the replica write overwrites it

    regions.settle()

    for region in REGIONS:
        assert regions.item(region, ALICE_BOB) == {**ALICE_BOB, "via": {"S": "east"}}, region


def test_a_delete_that_changed_nothing_in_the_replica_leaves_no_echo_to_swallow_a_later_delete(regions):
    # Created and deleted in east before replication looked: west is sent a delete of an item it
    # never had, which writes no stream record, so no echo of it may be expected.
    regions.put(EAST, ALICE_BOB, via="east")
    regions.delete(EAST, ALICE_BOB)
    regions.settle()

    regions.put(WEST, ALICE_BOB, via="west")
    regions.settle()
    assert regions.item(EAST, ALICE_BOB) == {**ALICE_BOB, "via": {"S": "west"}}

    regions.delete(WEST, ALICE_BOB)
    regions.settle()

    assert regions.item(WEST, ALICE_BOB) is None
    assert regions.item(EAST, ALICE_BOB) is None


# -- media ----------------------------------------------------------------------------------------------


JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 60


class Media:
    """Each region's media table and bucket, and a media replicator over them."""

    def __init__(self, tmp_path: Any) -> None:
        self.tmp_path = tmp_path
        self.dynamodb = {r: boto3.client("dynamodb", region_name=r, config=AWS_CONFIG) for r in REGIONS}
        self.s3 = {r: boto3.client("s3", region_name=r, config=AWS_CONFIG) for r in REGIONS}
        self.down: set[str] = set()
        for region in REGIONS:
            create_table(self.dynamodb[region], MEDIA)
            location = {} if region == "us-east-1" else {"LocationConstraint": region}
            self.s3[region].create_bucket(Bucket=self.bucket(region), CreateBucketConfiguration=location)
            self.s3[region].put_bucket_versioning(
                Bucket=self.bucket(region), VersioningConfiguration={"Status": "Enabled"}
            )
        self.versions: dict[str, str] = {}  # media ID -> the version its upload stored
        self.start()

    def start(self, state_file: str = "replication.sqlite") -> None:
        self.replication = MediaReplication(
            REGIONS,
            ACCOUNT,
            ReplicationState(self.tmp_path / state_file),
            lambda service, region: {"dynamodb": self.dynamodb, "s3": self.s3}[service][region],
            is_up=lambda r: r not in self.down,
        )

    @staticmethod
    def bucket(region: str) -> str:
        return naming.media_bucket_name(ACCOUNT, region)

    def store(self, region: str) -> MediaStore:
        return MediaStore(self.dynamodb[region], naming.table_name(MEDIA))

    def upload(self, region: str, owner: str = "alice") -> tuple[str, str]:
        """A pending record in every region (tables replicate) and the object in `region`'s bucket."""
        media_id = generate_ulid()
        for each in REGIONS:
            self.store(each).record_pending(
                media_id, owner, "image/jpeg", len(JPEG), "2026-11-21T10:00:00.000Z"
            )
        object_key = media_object_key(owner, media_id)
        self.versions[media_id] = self.s3[region].put_object(
            Bucket=self.bucket(region), Key=object_key, Body=JPEG, ContentType="image/jpeg"
        )["VersionId"]
        return media_id, object_key

    def accept(self, region: str, media_id: str) -> None:
        """What the media processor records on accepting the upload's version."""
        self.store(region).mark_ready(
            media_id, "image/jpeg", len(JPEG), sha256="0" * 64, version_id=self.versions[media_id]
        )

    def object(self, region: str, object_key: str) -> dict[str, Any] | None:
        try:
            found = self.s3[region].get_object(Bucket=self.bucket(region), Key=object_key)
        except self.s3[region].exceptions.NoSuchKey:
            return None
        return {"body": found["Body"].read(), "type": found["ContentType"], "metadata": found["Metadata"]}

    def keys(self, region: str) -> list[str]:
        listed = self.s3[region].list_objects_v2(Bucket=self.bucket(region))
        return sorted(entry["Key"] for entry in listed.get("Contents", []))


@pytest.fixture
def media(tmp_path):
    with mock_aws():
        yield Media(tmp_path)


def test_media_is_copied_only_once_the_target_regions_record_is_ready_and_never_back(media):
    media_id, object_key = media.upload(EAST)

    assert media.replication.sync() == 0  # pending everywhere
    assert media.keys(WEST) == []

    media.accept(WEST, media_id)
    assert media.replication.sync() == 1
    assert media.object(WEST, object_key) == {
        "body": JPEG,
        "type": "image/jpeg",
        "metadata": {REPLICA_METADATA: EAST},
    }

    media.accept(EAST, media_id)
    assert media.replication.sync() == 0
    media.start()  # a restart, over the same state
    assert media.replication.sync() == 0
    media.start("lost-state.sqlite")  # even without its state, a replica is never copied back
    media.replication.sync()
    assert media.object(EAST, object_key) == {"body": JPEG, "type": "image/jpeg", "metadata": {}}
    assert media.keys(EAST) == media.keys(WEST) == [object_key]


@pytest.mark.parametrize("record", ["rejected", "someone-elses", "missing"])
def test_media_whose_target_record_is_not_the_owners_ready_upload_is_not_copied(media, record):
    media_id, object_key = media.upload(EAST)
    west = media.store(WEST)
    if record == "rejected":
        west.mark_rejected(media_id, "its content is not a JPEG, PNG, GIF, WebP or MP4 file")
    elif record == "someone-elses":
        media.accept(WEST, media_id)
        media.s3[EAST].copy_object(
            Bucket=media.bucket(EAST),
            Key=media_object_key("mallory", media_id),
            CopySource={"Bucket": media.bucket(EAST), "Key": object_key},
        )
        media.s3[EAST].delete_object(Bucket=media.bucket(EAST), Key=object_key)
    else:
        media.dynamodb[WEST].delete_item(
            TableName=naming.table_name(MEDIA), Key={"media_id": {"S": media_id}}
        )
    media.s3[EAST].put_object(Bucket=media.bucket(EAST), Key="media/alice/not-a-media-id", Body=JPEG)

    assert media.replication.sync() == 0
    assert media.keys(WEST) == []


def test_media_waits_for_a_region_that_is_down(media):
    media_id, object_key = media.upload(EAST)
    media.accept(WEST, media_id)
    media.down.add(WEST)

    assert media.replication.sync() == 0

    media.down.clear()
    assert media.replication.sync() == 1
    assert media.keys(WEST) == [object_key]


def test_a_flush_out_of_time_leaves_the_rest_owed_for_the_next_cycle(regions):
    # A cycle writes for a bounded time, then reads the streams again, so writes keep their times.
    for follower in ("alice", "bob", "carol"):
        regions.put(EAST, key(follower, "dave"), via="east")
    regions.poll()

    assert regions.replication.flush(budget_seconds=0) == 0
    assert regions.state.outbox_sizes() == {WEST: 3}
    assert regions.replication.flush() == 3
    assert regions.state.outbox_sizes() == {}


def test_only_the_accepted_version_of_media_is_copied(media):
    media_id, object_key = media.upload(EAST)
    media.accept(WEST, media_id)
    # The upload URL reused after acceptance: a later version the processor has not removed yet.
    media.s3[EAST].put_object(
        Bucket=media.bucket(EAST), Key=object_key, Body=b"\x89PNG swapped", ContentType="image/jpeg"
    )

    assert media.replication.sync() == 1
    assert media.object(WEST, object_key)["body"] == JPEG
