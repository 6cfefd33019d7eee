"""The AZ drill on the synthesized local stage: one AZ's hosts terminated in moto, timelines unchanged."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from aviary.clients import AWS_CONFIG
from tests.drills.once import once_per_session
from tools.drills import az_drill
from tools.drills.result import DrillResult
from tools.drills.served_pages import Tally, compare_pages, pages_unlike_writes
from tools.drills.timeline_hosts import DrillError

# One variant is enough: a drill deploys the stacks of a single region.
on_local_stage = pytest.mark.parametrize("local_assembly", ["local-2-regions"], indirect=True)


@pytest.fixture(scope="module")
def drill(local_assembly, assembly_dir, tmp_path_factory) -> DrillResult:
    """One run of the drill for every test here: it deploys and reads for several seconds."""
    return once_per_session(
        assembly_dir / f"az-drill-{local_assembly.variant.name}.json",
        lambda: az_drill.run(
            local_assembly.directory, local_assembly.config, work_dir=tmp_path_factory.mktemp("az-drill")
        ),
    )


def _zones(local_assembly) -> tuple[str, ...]:
    return local_assembly.config.regions[0].availability_zones


@on_local_stage
def test_no_timeline_page_is_lost_or_duplicated(drill, local_assembly):
    details = drill.details
    readers_after = details["surviving_hosts"] + details["replacements"]
    assert drill.passed, (drill.lost, drill.duplicated)
    assert drill.lost == 0
    assert drill.duplicated == 0
    assert details["pages_per_host"] > details["users"]  # some timelines run to several pages
    assert drill.survived == details["pages_per_host"] * readers_after
    assert details["timelines_matching_writes"] == details["users"]
    assert details["pages_differing_between_hosts_before"] == 0


@on_local_stage
def test_the_other_azs_hold_the_required_capacity_without_scaling(drill, local_assembly):
    config = local_assembly.config
    lost, *others = _zones(local_assembly)
    details = drill.details
    assert details["lost_az"] == lost
    assert details[f"hosts_after_loss_{lost}"] == 0
    for zone in others:
        assert details[f"hosts_before_{zone}"] == config.hosts_per_az
        assert details[f"hosts_after_loss_{zone}"] == config.hosts_per_az
    assert details["surviving_hosts"] >= config.required_read_capacity
    assert details["capacity_left_percent"] >= 100.0
    assert details["worst_case_capacity_percent"] >= 100.0
    assert details["other_az_groups_changed"] == 0
    assert details["survivors_in_target_group"] == details["surviving_hosts"]
    assert details["terminated_in_target_group"] == 0


@on_local_stage
def test_min_size_per_az_is_the_required_capacity_over_the_other_azs(drill, local_assembly):
    config = local_assembly.config
    zones = _zones(local_assembly)
    expected = -(-config.required_read_capacity // (len(zones) - 1))
    assert drill.details["min_size_per_az"] == ",".join(f"{zone}={expected}" for zone in sorted(zones))


@on_local_stage
def test_the_lost_az_is_refilled_to_min_size_in_its_own_az(drill, local_assembly):
    lost = _zones(local_assembly)[0]
    details = drill.details
    assert details["hosts_terminated"] == local_assembly.config.hosts_per_az
    assert details["replacements"] == details["lost_az_min_size"]
    assert details["replacements_in_lost_az"] == details["replacements"]
    assert details["replacements_misplaced"] == 0
    assert details[f"hosts_after_replacement_{lost}"] == details["lost_az_min_size"]


@on_local_stage
def test_survivors_answer_from_dynamodb_not_from_memory(drill, local_assembly):
    # Past the fresh window every page is read again: the survivors' answers are the table's.
    details = drill.details
    assert details["survivor_dynamodb_reads"] == details["surviving_hosts"] * details["pages_per_host"]
    assert details["stale_pages_after_loss"] == 0


# -- the counting can see a failure ------------------------------------------------------------


def _page(*tweet_ids: str, next_cursor: str | None = None) -> str:
    items = [{"id": tweet_id, "created_at": "2026-11-21T00:00:00.000Z"} for tweet_id in tweet_ids]
    return json.dumps({"items": items, "next_cursor": next_cursor}, separators=(",", ":"))


BEFORE = {"alice": [_page("t4", "t3", next_cursor="c"), _page("t2", "t1")], "bob": [_page("t9")]}


def test_identical_pages_all_survive():
    assert compare_pages(BEFORE, BEFORE) == Tally(survived=3, lost=0, duplicated=0)


def test_an_altered_page_is_counted_lost():
    after = {**BEFORE, "alice": [BEFORE["alice"][0], _page("t2", "t1 edited")]}
    assert compare_pages(BEFORE, after) == Tally(survived=2, lost=1, duplicated=0)


def test_a_503_a_missing_page_and_an_extra_page_are_counted_lost():
    after = {"alice": [BEFORE["alice"][0], None], "bob": [_page("t9"), _page("t8")]}
    assert compare_pages(BEFORE, after).lost == 2  # the 503 and bob's extra page
    assert compare_pages(BEFORE, {"alice": BEFORE["alice"]}).lost == 1  # bob's timeline missing


def test_an_entry_served_twice_is_counted_duplicated():
    after = {**BEFORE, "alice": [BEFORE["alice"][0], _page("t2", "t3")]}
    tally = compare_pages(BEFORE, after)
    assert tally.duplicated == 1
    assert tally.lost == 1


def test_a_baseline_unlike_the_writes_is_counted_lost():
    expected = {"alice": ["t4", "t3", "t2", "t1"], "bob": ["t9"]}
    assert pages_unlike_writes(expected, BEFORE) == 0
    assert pages_unlike_writes({**expected, "bob": ["t9", "t8"]}, BEFORE) == 1
    assert pages_unlike_writes({**expected, "carol": ["t5"]}, BEFORE) == 1


def test_losing_an_az_of_an_undersized_fleet_leaves_less_than_required():
    fleet = {"a": 2, "b": 2, "c": 2}
    assert az_drill.capacity_left_percent(fleet, "a", required=6) == pytest.approx(66.7)
    assert az_drill.worst_case_capacity_percent({"a": 3, "b": 3, "c": 2}, required=6) == pytest.approx(83.3)
    assert az_drill.worst_case_capacity_percent({"a": 3, "b": 3, "c": 3}, required=6) == 100.0


def test_a_group_spanning_several_subnets_is_refused_as_not_zonal():
    region = "us-east-1"
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=region, config=AWS_CONFIG)
        autoscaling = boto3.client("autoscaling", region_name=region, config=AWS_CONFIG)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{region}{zone}")[
                "Subnet"
            ]["SubnetId"]
            for i, zone in enumerate("ab")
        ]
        # No instances are launched (MinSize 0), so the image is never looked up.
        ec2.create_launch_template(
            LaunchTemplateName="hosts",
            LaunchTemplateData={"ImageId": "ami-00000000000000000", "InstanceType": "m6id.large"},
        )
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName="spread",
            LaunchTemplate={"LaunchTemplateName": "hosts"},
            MinSize=0,
            MaxSize=2,
            VPCZoneIdentifier=",".join(subnets),
        )
        with pytest.raises(DrillError, match="spans 2 subnets"):
            az_drill.zonal_groups(autoscaling, ec2, ["spread"])
