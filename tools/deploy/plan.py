"""What a deploy of a synthesized cloud assembly does, worked out without AWS: the order of the
`cdk deploy` commands, and what the fleet and the functions will ask of the account's quotas."""

from __future__ import annotations

import graphlib
import shlex
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stacks.names import stack_name
from tools.local_aws.assembly import StackTemplate

# Among stacks that are ready at the same time: the stateful layer first, then the stacks that read
# it across regions, and the stateless services last, one region at a time with the primary first,
# so that a bad service change stops the deploy after one region.
KIND_ORDER = ("Data", "MediaReplication", "MediaDelivery", "Service")


def stack_kind(stack: StackTemplate) -> str | None:
    """Data, Service, MediaReplication or MediaDelivery (stacks/names.py), or None for another stack."""
    return next((kind for kind in KIND_ORDER if stack_name(kind, stack.region) == stack.name), None)


def stack_dependencies(stack: StackTemplate, names: Iterable[str]) -> tuple[str, ...]:
    """The stacks the manifest says must be deployed before this one (its asset manifest is not one)."""
    known = set(names)
    return tuple(name for name in stack.dependencies if name in known)


def deploy_order(stacks: Sequence[StackTemplate], regions: Sequence[str]) -> tuple[StackTemplate, ...]:
    """Every stack once, each after all its dependencies; ties broken by KIND_ORDER, then by the
    configured region order (primary first), then by name."""
    by_name = {stack.name: stack for stack in stacks}
    region_rank = {region: index for index, region in enumerate(regions)}

    def rank(name: str) -> tuple[int, int, str]:
        stack = by_name[name]
        kind = stack_kind(stack)
        return (
            KIND_ORDER.index(kind) if kind else len(KIND_ORDER),
            region_rank.get(stack.region, len(region_rank)),
            name,
        )

    sorter = graphlib.TopologicalSorter({stack.name: stack_dependencies(stack, by_name) for stack in stacks})
    sorter.prepare()  # raises graphlib.CycleError on a cycle
    ready: set[str] = set()
    order: list[StackTemplate] = []
    while sorter.is_active():
        ready.update(sorter.get_ready())
        chosen = min(ready, key=rank)
        ready.remove(chosen)
        order.append(by_name[chosen])
        sorter.done(chosen)
    return tuple(order)


def deploy_command(stack: str, cdk_out: Path, require_approval: str | None) -> tuple[str, ...]:
    """`cdk deploy` of exactly this stack from the synthesized assembly (the one the checks read):
    --exclusively because the order is ours, and its dependencies are already deployed."""
    approval = ("--require-approval", require_approval) if require_approval else ()
    return ("cdk", "deploy", "--app", str(cdk_out), "--exclusively", "--no-notices", *approval, stack)


def shell_line(command: Sequence[str]) -> str:
    return shlex.join(command)


@dataclass(frozen=True)
class BootstrapNeed:
    """The bootstrap version a region's stacks require, and the SSM parameter that holds it."""

    region: str
    version: int
    parameter: str


def bootstrap_needs(stacks: Sequence[StackTemplate]) -> tuple[BootstrapNeed, ...]:
    """Per region (in first-seen order), the highest requiresBootstrapStackVersion of its stacks."""
    needs: dict[str, BootstrapNeed] = {}
    for stack in stacks:
        if stack.bootstrap_version is None or stack.bootstrap_version_parameter is None:
            continue
        known = needs.get(stack.region)
        if known is None or stack.bootstrap_version > known.version:
            needs[stack.region] = BootstrapNeed(
                stack.region, stack.bootstrap_version, stack.bootstrap_version_parameter
            )
    return tuple(needs.values())


def fleet_hosts(stacks: Sequence[StackTemplate]) -> dict[str, dict[str, int]]:
    """Per region, per instance type: the most instances its Auto Scaling groups may run (MaxSize)."""
    hosts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for stack in stacks:
        resources = stack.template.get("Resources", {})
        for group in _of_type(resources, "AWS::AutoScaling::AutoScalingGroup"):
            properties = group["Properties"]
            instance_type = _launch_template_type(resources, properties.get("LaunchTemplate", {}))
            if instance_type:
                hosts[stack.region][instance_type] += int(properties["MaxSize"])
    return {region: dict(types) for region, types in hosts.items()}


def lambda_concurrency(stacks: Sequence[StackTemplate]) -> dict[str, int]:
    """Per region, the concurrent executions the functions may need at their limits: the HTTP API's
    burst limit (requests let through at once), each queue source's maximum concurrency, and each
    stream source's parallelization factor for one shard (a floor: a table has at least one), plus
    any reserved concurrency."""
    need: dict[str, int] = defaultdict(int)
    for stack in stacks:
        resources = stack.template.get("Resources", {})
        for stage in _of_type(resources, "AWS::ApiGatewayV2::Stage"):
            burst = stage["Properties"].get("DefaultRouteSettings", {}).get("ThrottlingBurstLimit")
            need[stack.region] += int(burst or 0)
        for mapping in _of_type(resources, "AWS::Lambda::EventSourceMapping"):
            properties = mapping["Properties"]
            if "ScalingConfig" in properties:
                need[stack.region] += int(properties["ScalingConfig"].get("MaximumConcurrency", 0))
            elif "ParallelizationFactor" in properties:
                need[stack.region] += int(properties["ParallelizationFactor"])
        for function in _of_type(resources, "AWS::Lambda::Function"):
            need[stack.region] += int(function["Properties"].get("ReservedConcurrentExecutions", 0))
    return dict(need)


def _of_type(resources: Mapping[str, Any], resource_type: str) -> list[Mapping[str, Any]]:
    return [resource for resource in resources.values() if resource.get("Type") == resource_type]


def _launch_template_type(resources: Mapping[str, Any], reference: Mapping[str, Any]) -> str | None:
    template_id = reference.get("LaunchTemplateId", {})
    logical_id = template_id.get("Ref") if isinstance(template_id, dict) else None
    template = resources.get(logical_id or "", {})
    data = template.get("Properties", {}).get("LaunchTemplateData", {})
    instance_type = data.get("InstanceType")
    return instance_type if isinstance(instance_type, str) else None
