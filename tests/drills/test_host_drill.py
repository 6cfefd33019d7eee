"""The host drill: a warm host's cache disk is deleted, a replacement re-warms; DynamoDB cut off."""

from __future__ import annotations

import base64

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from moto import mock_aws

from aviary.clients import AWS_CONFIG
from aviary.host_settings import TimelineHostSettings
from aviary.media_urls import MEDIA_BASE_URL_VARIABLE
from aviary.schema import ALL_TABLES
from hosts.timeline_service.service import RETRY_AFTER_SECONDS
from tests.drills.once import once_per_session
from tools.drills import host_drill
from tools.drills.result import DrillResult
from tools.drills.served_pages import compare_pages, timelines_matching
from tools.drills.timeline_hosts import DrillError, FakeClock, TimelineHost, host_settings, seed_timelines
from tools.local_aws.tables import create_tables

REGION = "us-east-1"
# One variant is enough: a drill deploys the stacks of a single region.
on_local_stage = pytest.mark.parametrize("local_assembly", ["local-2-regions"], indirect=True)


@pytest.fixture(scope="module")
def drill(local_assembly, assembly_dir, tmp_path_factory) -> DrillResult:
    """One run of the drill for every test here: it deploys and reads for several seconds."""
    return once_per_session(
        assembly_dir / f"host-drill-{local_assembly.variant.name}.json",
        lambda: host_drill.run(
            local_assembly.directory, local_assembly.config, work_dir=tmp_path_factory.mktemp("host-drill")
        ),
    )


@on_local_stage
def test_the_replacement_serves_the_same_pages_after_rewarming(drill, local_assembly):
    details = drill.details
    assert drill.passed, (drill.lost, drill.duplicated)
    assert drill.lost == 0
    assert drill.duplicated == 0
    # Re-warming, warm again, and stale during the outage: three reads of every page, all identical.
    assert drill.survived == 3 * details["pages"]
    assert details["pages"] > details["users"]
    assert details["timelines_matching_writes"] == details["users"]


@on_local_stage
def test_the_cache_was_warm_when_its_disk_was_lost(drill, local_assembly):
    details = drill.details
    assert details["cold_start_misses"] == details["pages"]
    assert details["warm_misses_before_loss"] == 0
    assert details["pages_cached_before_loss"] == details["pages"]
    assert details["cache_files_deleted"] >= 1


@on_local_stage
def test_the_replacement_rewarms_every_page_from_dynamodb_once(drill, local_assembly):
    details = drill.details
    assert details["rewarm_misses"] == details["pages"]
    assert details["misses_after_rewarm"] == 0


@on_local_stage
def test_with_dynamodb_unreachable_a_warm_host_serves_stale_and_a_cold_one_503(drill, local_assembly):
    details = drill.details
    assert details["stale_pages_during_outage"] == details["pages"]
    assert details["warm_503s_during_outage"] == 0
    # A cold host cannot get past anyone's first page: one 503 per user, nothing served.
    assert details["cold_503s_during_outage"] == details["users"]
    assert details["cold_pages_served_during_outage"] == 0
    assert details["cold_retry_after_seconds"] == str(RETRY_AFTER_SECONDS)
    assert details["failures_logged_during_outage"] == details["pages"] + details["users"]


# -- the drill's parts on plain moto tables: the counting sees a host that cannot serve ----------


@pytest.fixture
def timelines():
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION, config=AWS_CONFIG)
        names = create_tables(dynamodb, ALL_TABLES)
        settings = TimelineHostSettings.from_environment(
            {
                "AVIARY_REGION": REGION,
                "AVIARY_TIMELINES_TABLE": names["timelines"],
                "AVIARY_COUNTS_TABLE": names["counts"],
                "AVIARY_CELEBRITY_THRESHOLD": "10000",
                "AVIARY_TOKEN_SETTINGS_PARAMETER": "/aviary/identity/token-settings",
                MEDIA_BASE_URL_VARIABLE: "https://media.aviary.example.com",
            }
        )
        yield settings, seed_timelines(settings, users=6, posts_per_user=2)


def test_seeded_timelines_hold_fanned_out_and_celebrity_tweets(timelines, tmp_path):
    settings, seeded = timelines
    host = TimelineHost("a", tmp_path / "a", settings, FakeClock())
    try:
        sweep = host.sweep(sorted(seeded.expected), limit=5)
    finally:
        host.close()
    assert seeded.posts == 14  # 6 users and the celebrity, twice each
    assert len(seeded.expected["user00"]) == 2 + 3 * 2 + 2  # own, three followees', the celebrity's
    assert timelines_matching(seeded.expected, sweep.pages) == len(seeded.expected)
    assert sweep.misses == sweep.served == len(sweep.keys)


def test_a_cold_host_cut_off_from_dynamodb_is_counted_as_losing_every_page(timelines, tmp_path):
    settings, seeded = timelines
    handles = sorted(seeded.expected)
    clock = FakeClock()
    warm, cold = (TimelineHost(name, tmp_path / name, settings, clock) for name in ("warm", "cold"))
    try:
        served = warm.sweep(handles, limit=5)
        cold.client.reachable = False
        with pytest.raises(EndpointConnectionError):
            cold.client.query(TableName=settings.timelines_table)
        refused = cold.sweep(handles, limit=5)
    finally:
        warm.close()
        cold.close()
    assert refused.unavailable == len(handles)
    assert refused.served == 0
    tally = compare_pages(served.pages, refused.pages)
    assert tally.survived == 0
    assert tally.lost == served.served


def test_losing_the_disks_deletes_the_cache_files(timelines, tmp_path):
    settings, seeded = timelines
    host = TimelineHost("a", tmp_path / "a", settings, FakeClock())
    try:
        sweep = host.sweep(sorted(seeded.expected), limit=5)
        assert host.wait_until_cached(sweep.keys) == len(sweep.keys)
    finally:
        host.close()
    assert host.cache_path == tmp_path / "a" / "data" / "timeline-cache" / "cache.sqlite"
    assert host.cache_path.exists()
    assert host.lose_disks() >= 1
    assert not host.cache_path.parent.exists()


def test_user_data_without_the_settings_file_is_refused():
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION, config=AWS_CONFIG)
        user_data = "#!/bin/bash\necho no settings here\n"
        instance = ec2.run_instances(
            ImageId="ami-00000000000000000", MinCount=1, MaxCount=1, UserData=user_data
        )["Instances"][0]["InstanceId"]
        assert (
            base64.b64decode(
                ec2.describe_instance_attribute(InstanceId=instance, Attribute="userData")["UserData"][
                    "Value"
                ]
            ).decode()
            == user_data
        )
        with pytest.raises(DrillError, match=r"writes no /etc/aviary/timeline.env"):
            host_settings(ec2, instance)
