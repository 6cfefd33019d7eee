"""AZ drill: every timeline host in one Availability Zone is terminated at once.

Static stability says the other AZs' zonal groups already hold the region's required read
capacity, so nothing has to scale; the lost AZ's group replaces its hosts in its own AZ; and the
timelines served do not change. The drill checks each claim against what CloudFormation created
from the local-stage templates in in-process moto, with a real TimelineService per EC2 instance.

What moto does and what AWS does: terminating instances in moto (ec2 TerminateInstances) makes the
instances' Auto Scaling group launch replacements at once, into the group's subnet. A real group
notices through its EC2 and ELB health checks (the 3-minute grace period applies to new hosts),
terminates what failed and launches into its only subnet; while the AZ itself is impaired those
launches fail and are retried, and no other AZ's group scales, because none needs to. The target
group: moto drops terminated hosts from it but does not register the replacements it launches after
a termination (it registers a group's instances only when the group is created or resized), where
a real group registers each new host before it takes traffic; the drill reports both counts and
decides which hosts serve from EC2 instance state, since moto reports every target healthy.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stacks.config import DeploymentConfig
from tools.drills.result import DrillResult
from tools.drills.served_pages import Tally, compare_pages, pages_unlike_writes, timelines_matching
from tools.drills.timeline_hosts import (
    PAST_FRESH_WINDOW_SECONDS,
    DrillError,
    FakeClock,
    Sweep,
    TimelineHost,
    deploy_region,
    fleet_group_names,
    host_settings,
    seed_timelines,
    work_directory,
)
from tools.local_aws.in_process import aws_client, in_process_moto


@dataclass(frozen=True)
class ZonalGroup:
    """One AZ's Auto Scaling group of timeline hosts, as AWS describes it now."""

    name: str
    availability_zone: str
    subnet_id: str
    min_size: int
    desired_capacity: int
    instances: tuple[str, ...]  # running, in service, in the group's AZ and subnet
    misplaced: tuple[str, ...]  # running in service but outside the group's AZ or subnet


def zonal_groups(autoscaling: Any, ec2: Any, group_names: list[str]) -> dict[str, ZonalGroup]:
    """The fleet by AZ; refuses a group with more than one subnet (it would not be zonal)."""
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=group_names)["AutoScalingGroups"]
    instance_ids = [i["InstanceId"] for g in groups for i in g["Instances"]]
    running: dict[str, dict[str, Any]] = {}
    if instance_ids:
        for reservation in ec2.describe_instances(InstanceIds=instance_ids)["Reservations"]:
            for instance in reservation["Instances"]:
                if instance["State"]["Name"] == "running":
                    running[instance["InstanceId"]] = instance
    fleet: dict[str, ZonalGroup] = {}
    for group in groups:
        subnets = [s for s in group["VPCZoneIdentifier"].split(",") if s]
        if len(subnets) != 1:
            raise DrillError(
                f"Group {group['AutoScalingGroupName']} spans {len(subnets)} subnets; timeline groups must "
                "be zonal (one subnet each) for an AZ to be a unit of failure."
            )
        subnet_id = subnets[0]
        zone = ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]["AvailabilityZone"]
        in_service = [
            i["InstanceId"]
            for i in group["Instances"]
            if i["LifecycleState"] == "InService" and i["InstanceId"] in running
        ]
        placed = [
            i
            for i in in_service
            if running[i]["Placement"]["AvailabilityZone"] == zone and running[i].get("SubnetId") == subnet_id
        ]
        if zone in fleet:
            raise DrillError(f"Two timeline groups serve {zone}; expected one group per AZ.")
        fleet[zone] = ZonalGroup(
            name=group["AutoScalingGroupName"],
            availability_zone=zone,
            subnet_id=subnet_id,
            min_size=group["MinSize"],
            desired_capacity=group["DesiredCapacity"],
            instances=tuple(sorted(placed)),
            misplaced=tuple(sorted(set(in_service) - set(placed))),
        )
    return fleet


def capacity_left_percent(hosts_by_az: Mapping[str, int], lost_az: str, required: int) -> float:
    """Serving hosts outside `lost_az` as a percentage of the region's required read capacity."""
    surviving = sum(count for zone, count in hosts_by_az.items() if zone != lost_az)
    return round(100.0 * surviving / required, 1)


def worst_case_capacity_percent(min_size_by_az: Mapping[str, int], required: int) -> float:
    """Capacity left, by each group's MinSize, after losing whichever AZ hurts most (static stability)."""
    return min(capacity_left_percent(min_size_by_az, zone, required) for zone in min_size_by_az)


def registered_targets(elbv2: Any, autoscaling: Any, group_names: list[str]) -> set[str]:
    """The instances the groups' target groups route to (moto reports every registered target healthy)."""
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=group_names)["AutoScalingGroups"]
    target_groups = {arn for group in groups for arn in group.get("TargetGroupARNs", [])}
    return {
        target["Target"]["Id"]
        for arn in sorted(target_groups)
        for target in elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    }


def run(
    cdk_out: Path,
    config: DeploymentConfig,
    *,
    region: str | None = None,
    lost_az: str | None = None,
    users: int = 6,
    posts_per_user: int = 2,
    page_limit: int = 5,
    work_dir: Path | None = None,
) -> DrillResult:
    """Terminate every timeline host of one AZ and count the timeline pages that still come out the same.

    `cdk_out` is a synthesized local-stage cloud assembly and `config` the deployment config it came
    from. `lost_az` defaults to the region's first AZ. survived/lost count pages read, after the loss,
    through every surviving host and every replacement, against the pages read before through the
    first host. Also lost: pages where another host disagreed with it before the loss, and the pages
    of any timeline that did not hold exactly the tweets written in the first place.
    """
    started = time.monotonic()
    region = region or config.primary_region
    with in_process_moto(config.account), work_directory(work_dir) as work:
        deployment = deploy_region(cdk_out, config, region)
        autoscaling = aws_client("autoscaling", region)
        ec2 = aws_client("ec2", region)
        group_names = fleet_group_names(deployment)

        before = zonal_groups(autoscaling, ec2, group_names)
        zones = next(r for r in config.regions if r.name == region).availability_zones
        if sorted(before) != sorted(zones):
            raise DrillError(
                f"The timeline groups serve {', '.join(sorted(before))}, not {', '.join(zones)}."
            )
        lost_az = lost_az or zones[0]
        if lost_az not in before:
            raise DrillError(f"{lost_az} is not one of {region}'s timeline AZs ({', '.join(zones)}).")
        lost_group = before[lost_az]

        first_host = min(i for g in before.values() for i in g.instances)
        seeded = seed_timelines(host_settings(ec2, first_host), users=users, posts_per_user=posts_per_user)
        handles = sorted(seeded.expected)
        clock = FakeClock()

        hosts = {
            instance: TimelineHost(instance, work / instance, host_settings(ec2, instance), clock)
            for group in before.values()
            for instance in group.instances
        }
        try:
            sweeps_before = {name: host.sweep(handles, page_limit) for name, host in hosts.items()}
            baseline = sweeps_before[first_host].pages
            disagreeing = sum(
                (compare_pages(baseline, sweep.pages) for sweep in sweeps_before.values()), Tally()
            )

            # The failure: the AZ's hosts go at once, with the instance-store disks their caches were on.
            gone = set(lost_group.instances)
            ec2.terminate_instances(InstanceIds=sorted(gone))
            for instance in gone:
                lost_host = hosts.pop(instance)
                lost_host.close()
                lost_host.lose_disks()

            after = zonal_groups(autoscaling, ec2, group_names)
            survivors = [i for zone, g in after.items() if zone != lost_az for i in g.instances if i in hosts]
            scaled_elsewhere = sum(
                1 for zone, g in after.items() if zone != lost_az and g.instances != before[zone].instances
            )
            # Hosts of each AZ from before the failure still serving after it; moto's replacements
            # (launched within TerminateInstances) are new instances and are counted apart.
            still_running = {i for g in after.values() for i in g.instances}
            hosts_by_az_after_loss = {
                zone: len(set(group.instances) & still_running) for zone, group in before.items()
            }

            # Survivors' caches are past their fresh window: what they serve now comes from DynamoDB.
            clock.now += PAST_FRESH_WINDOW_SECONDS
            survivor_sweeps = {instance: hosts[instance].sweep(handles, page_limit) for instance in survivors}

            lost_group_after = after[lost_az]
            replacements = [
                i for i in (*lost_group_after.instances, *lost_group_after.misplaced) if i not in gone
            ]
            for instance in replacements:
                hosts[instance] = TimelineHost(instance, work / instance, host_settings(ec2, instance), clock)
            replacement_sweeps = {
                instance: hosts[instance].sweep(handles, page_limit) for instance in replacements
            }
        finally:
            for host in hosts.values():
                host.close()
        targets = registered_targets(aws_client("elbv2", region), autoscaling, group_names)

    after_loss: dict[str, Sweep] = {**survivor_sweeps, **replacement_sweeps}
    tally = sum((compare_pages(baseline, sweep.pages) for sweep in after_loss.values()), Tally())
    details: dict[str, float | int | str] = {
        "region": region,
        "lost_az": lost_az,
        "required_read_capacity": config.required_read_capacity,
        "min_size_per_az": ",".join(f"{zone}={g.min_size}" for zone, g in sorted(before.items())),
    }
    for zone in sorted(before):
        details[f"hosts_before_{zone}"] = len(before[zone].instances)
        details[f"hosts_after_loss_{zone}"] = hosts_by_az_after_loss[zone]
        details[f"hosts_after_replacement_{zone}"] = len(after[zone].instances)
    details.update(
        {
            "surviving_hosts": len(survivors),
            "capacity_left_percent": capacity_left_percent(
                hosts_by_az_after_loss, lost_az, config.required_read_capacity
            ),
            "worst_case_capacity_percent": worst_case_capacity_percent(
                {zone: g.min_size for zone, g in before.items()}, config.required_read_capacity
            ),
            "other_az_groups_changed": scaled_elsewhere,
            "hosts_terminated": len(gone),
            "replacements": len(replacements),
            "replacements_in_lost_az": sum(1 for i in replacements if i in lost_group_after.instances),
            "replacements_misplaced": len(lost_group_after.misplaced),
            "lost_az_min_size": lost_group_after.min_size,
            "users": len(handles),
            "pages_per_host": sum(len(p) for p in baseline.values()),
            "timelines_matching_writes": timelines_matching(seeded.expected, baseline),
            "pages_differing_between_hosts_before": disagreeing.lost,
            "survivor_dynamodb_reads": sum(s.misses for s in survivor_sweeps.values()),
            "stale_pages_after_loss": sum(s.stale for s in after_loss.values()),
            "survivors_in_target_group": len(targets & set(survivors)),
            "terminated_in_target_group": len(targets & gone),
            "replacements_in_target_group": len(targets & set(replacements)),
            "deploy_seconds": round(deployment.seconds, 2),
        }
    )
    return DrillResult(
        scenario=f"AZ {lost_az} lost",
        injected=f"{len(gone)} hosts terminated in {lost_az}",
        survived=tally.survived,
        lost=tally.lost + disagreeing.lost + pages_unlike_writes(seeded.expected, baseline),
        duplicated=tally.duplicated + disagreeing.duplicated,
        seconds=time.monotonic() - started,
        details=details,
    )
