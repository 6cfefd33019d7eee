"""The timeline load balancer takes an AZ out of DNS once it has too few healthy hosts for its share."""

from __future__ import annotations

import itertools
import math

import pytest

from stacks.aviary_app import stack_name
from stacks.components.timeline_load_balancer import dns_failover_percentage

DNS_FAILOVER_PERCENTAGE = "target_group_health.dns_failover.minimum_healthy_targets.percentage"
ROUTING_COUNT = "target_group_health.unhealthy_state_routing.minimum_healthy_targets.count"
ROUTING_PERCENTAGE = "target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage"


def _stays_in_dns(healthy: int, hosts: int, threshold: int) -> bool:
    # The load balancer marks the AZ unhealthy in DNS when the healthy share is below the threshold.
    return 100 * healthy / hosts >= threshold


def test_an_az_leaves_dns_exactly_when_its_healthy_hosts_cannot_carry_its_share(assembly):
    required = assembly.config.required_read_capacity
    for region in assembly.config.region_names:
        stack = stack_name("Service", region)
        groups = assembly.resources(stack, "AWS::AutoScaling::AutoScalingGroup").values()
        hosts = {int(g["Properties"]["MinSize"]) for g in groups}
        assert len(hosts) == 1, hosts
        [hosts_per_az] = hosts
        azs = len(groups)
        [target_group] = assembly.resources(stack, "AWS::ElasticLoadBalancingV2::TargetGroup").values()
        attributes = {a["Key"]: a["Value"] for a in target_group["Properties"]["TargetGroupAttributes"]}
        threshold = int(attributes[DNS_FAILOVER_PERCENTAGE])
        assert 1 <= threshold <= 100
        # While every AZ is in DNS, each gets 1/azs of the region's load, `required` hosts' worth.
        for healthy in range(hosts_per_az + 1):
            carries_its_share = healthy * azs >= required
            assert _stays_in_dns(healthy, hosts_per_az, threshold) == carries_its_share, (region, healthy)
        # Fail open to unhealthy hosts only when an AZ has no healthy one (the default, pinned).
        assert attributes[ROUTING_COUNT] == "1"
        assert attributes[ROUTING_PERCENTAGE] == "off"


@pytest.mark.parametrize(("required", "azs"), list(itertools.product(range(1, 41), range(2, 7))))
def test_threshold_follows_the_fleet_sizing(required, azs):
    hosts_per_az = math.ceil(required / (azs - 1))
    needed = math.ceil(required / azs)
    threshold = dns_failover_percentage(hosts_per_az=hosts_per_az, hosts_needed_per_az=needed)
    assert _stays_in_dns(needed, hosts_per_az, threshold)
    assert not _stays_in_dns(needed - 1, hosts_per_az, threshold)


def test_default_fleet_keeps_an_az_with_two_of_three_hosts():
    assert dns_failover_percentage(hosts_per_az=3, hosts_needed_per_az=2) == 66


@pytest.mark.parametrize("needed", [0, 4])
def test_a_need_outside_the_fleet_is_refused(needed):
    with pytest.raises(ValueError, match="healthy hosts"):
        dns_failover_percentage(hosts_per_az=3, hosts_needed_per_az=needed)
