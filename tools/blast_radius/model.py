"""A pure model of what a cloud assembly deploys, as far as failure isolation is concerned.

Regions come from each stack's environment, AZs from subnets, zonal fleets from Auto Scaling
groups and their launch templates, and the stateful resources (tables, buckets, user pools)
with how each is replicated. Nothing here reads files or calls AWS: `build_model` takes the
templates `assembly.read_assembly` returns.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aviary import naming
from aviary.schema import ALL_TABLES, TableSchema
from stacks.config import INSTANCE_STORE_FAMILIES
from tools.local_aws.assembly import StackTemplate

# Device names an AMI's root volume takes; any other EBS mapping is a data volume.
ROOT_DEVICES = frozenset({"/dev/xvda", "/dev/sda1", "/dev/sda", "xvda", "sda1"})
UNRESOLVED = "<unresolved>"  # an intrinsic the template leaves to deploy time

_ARN_REGION = re.compile(r"arn:aws[a-z-]*:[a-z0-9-]+:([a-z]{2}(?:-gov)?-[a-z]+-\d):")
_S3_ARN = re.compile(r"^arn:aws[a-z-]*:s3:::([a-z0-9.-]+)$")


@dataclass(frozen=True, order=True)
class ResourceId:
    """A resource as a person finds it: the stack, then the logical ID inside its template."""

    stack: str
    logical_id: str

    def __str__(self) -> str:
        return f"{self.stack}/{self.logical_id}"


@dataclass(frozen=True)
class Subnet:
    id: ResourceId
    region: str
    az: str
    public: bool
    nat_gateways: tuple[str, ...]  # logical IDs of the NAT gateways its route table sends traffic to
    nat_azs: tuple[str, ...]  # and their AZs


@dataclass(frozen=True)
class LaunchSpec:
    """A launch template or launch configuration: what every host of a fleet boots as."""

    id: ResourceId
    instance_type: str | None  # None when the template leaves it to a parameter
    data_devices: tuple[str, ...]  # EBS mappings other than the root volume


@dataclass(frozen=True)
class Fleet:
    """An Auto Scaling group of read hosts; its MinSize is what stands with no scaling action."""

    id: ResourceId
    region: str
    subnets: tuple[Subnet, ...]
    min_size: int
    max_size: int
    launch: LaunchSpec | None
    instance_types: tuple[str, ...]  # the launch spec's type, or a mixed-instances policy's overrides

    @property
    def azs(self) -> tuple[str, ...]:
        return tuple(sorted({s.az for s in self.subnets}))

    @property
    def instance_store(self) -> bool:
        return bool(self.instance_types) and all(map(has_instance_store, self.instance_types))

    @property
    def serving_hosts(self) -> int:
        """Hosts that can serve: the timeline service needs /data on instance store to start at all."""
        return self.min_size if self.instance_store else 0

    def hosts_lost_with_az(self, az: str) -> int:
        """Hosts gone when `az` fails: those placed there and those whose egress runs through it.

        An Auto Scaling group spreads its hosts evenly over its AZs; the worst case is rounded up.
        """
        if not self.azs:
            return self.serving_hosts  # placement the template does not state: assume the worst
        hit = {s.az for s in self.subnets if s.az == az or az in s.nat_azs}
        return math.ceil(self.serving_hosts * len(hit) / len(self.azs))


@dataclass(frozen=True)
class NatGateway:
    id: ResourceId
    region: str
    az: str
    served: tuple[Subnet, ...]  # subnets whose route tables send traffic through it

    @property
    def foreign_subnets(self) -> tuple[Subnet, ...]:
        """Subnets of other AZs that lose their egress when this gateway's AZ fails."""
        return tuple(s for s in self.served if s.az != self.az)


@dataclass(frozen=True)
class DataVolume:
    """EBS data outside the root volume: it ties a host's state to one volume in one AZ."""

    id: ResourceId
    region: str
    az: str | None
    detail: str
    fleets: tuple[ResourceId, ...] = ()


@dataclass(frozen=True)
class Table:
    """A DynamoDB table declaration: a global table (with its replicas) or a regional table."""

    id: ResourceId
    region: str
    name: str | None
    kind: str  # "source" (source of truth), "derived" (rebuilt from the stream) or "other"
    is_global: bool
    copies: tuple[str, ...]  # regions this declaration puts a copy in
    pitr: bool

    @property
    def label(self) -> str:
        return self.name or self.id.logical_id


@dataclass(frozen=True)
class Bucket:
    id: ResourceId
    region: str
    name: str | None
    role: str  # "data" or "logs" (the destination of access or flow logs)
    versioned: bool
    replicated_to: tuple[str, ...]  # regions of the enabled replication rules' destinations
    replication: ResourceId | None  # what configures replication: the bucket or a custom resource
    time_control: bool  # S3 Replication Time Control on every rule

    @property
    def label(self) -> str:
        return self.name or self.id.logical_id


@dataclass(frozen=True)
class UserPool:
    """A Cognito user pool: the region it is declared in (its primary) and the regions of its
    replicas (AWS::Cognito::UserPoolReplica; Cognito allows one)."""

    id: ResourceId
    region: str
    replica_regions: tuple[str, ...] = ()


@dataclass(frozen=True)
class CrossRegionReference:
    """A function environment variable that names a resource living in another region."""

    function: ResourceId
    region: str
    variable: str
    target: str
    target_regions: tuple[str, ...]


@dataclass(frozen=True)
class HealthCheck:
    """A Route 53 health check: how fast it declares its endpoint failed."""

    id: ResourceId
    kind: str  # HTTPS, HTTP, TCP, CALCULATED, ...
    request_interval: int  # seconds between one checker's requests
    failure_threshold: int  # failures in a row that make it unhealthy

    @property
    def detection_seconds(self) -> int:
        return self.request_interval * self.failure_threshold


@dataclass(frozen=True)
class RoutingRecord:
    """A Route 53 record set; a latency record carries the region whose share it answers for."""

    id: ResourceId
    region: str  # the region of the stack that declares it
    name: str
    record_type: str
    latency_region: str | None  # its Region property: one region's share of latency-based routing
    health_check: HealthCheck | None  # the health check it follows (declared beside it)
    follows_health: bool  # a HealthCheckId, or an alias that evaluates its target's health


@dataclass(frozen=True)
class Listener:
    """A load balancer listener, and whether every request it takes only gets a redirect to HTTPS."""

    id: ResourceId
    region: str
    port: int
    protocol: str
    redirects_to_https: bool
    forwarding_rules: tuple[ResourceId, ...] = ()  # its rules that forward rather than redirect

    @property
    def serves_plain_http(self) -> bool:
        return self.protocol == "HTTP" and (not self.redirects_to_https or bool(self.forwarding_rules))


@dataclass(frozen=True)
class Distribution:
    """A CloudFront distribution: the S3 buckets it reads and how its behaviours reach them."""

    id: ResourceId
    bucket_origins: tuple[str, ...]  # bucket names of its S3 origins
    behaviours: tuple[tuple[str, tuple[str, ...]], ...]  # (path pattern, bucket names it can read from)


@dataclass(frozen=True)
class Region:
    name: str
    stacks: tuple[str, ...]
    azs: tuple[str, ...]  # every AZ that has a subnet


@dataclass(frozen=True)
class Model:
    stage: str
    stage_basis: str
    regions: tuple[Region, ...]
    subnets: tuple[Subnet, ...]
    fleets: tuple[Fleet, ...]
    nat_gateways: tuple[NatGateway, ...]
    data_volumes: tuple[DataVolume, ...]
    tables: tuple[Table, ...]
    buckets: tuple[Bucket, ...]
    user_pools: tuple[UserPool, ...]
    records: tuple[RoutingRecord, ...]
    listeners: tuple[Listener, ...]
    distributions: tuple[Distribution, ...]
    cross_region_references: tuple[CrossRegionReference, ...]

    @property
    def failover_records(self) -> tuple[RoutingRecord, ...]:
        """Route 53 records that follow a health check."""
        return tuple(r for r in self.records if r.follows_health)

    @property
    def latency_names(self) -> tuple[str, ...]:
        """Names routed by latency between regions, in the order first declared."""
        return tuple(dict.fromkeys(r.name for r in self.records if r.latency_region))

    def latency_records(self, name: str, region: str) -> tuple[RoutingRecord, ...]:
        return tuple(r for r in self.records if r.name == name and r.latency_region == region)

    @property
    def region_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.regions)

    @property
    def is_local(self) -> bool:
        return self.stage == "local"

    def fleets_in(self, region: str) -> tuple[Fleet, ...]:
        return tuple(f for f in self.fleets if f.region == region)

    def standing_hosts(self, region: str) -> int:
        return sum(f.serving_hosts for f in self.fleets_in(region))

    def table_copies(self, name: str) -> tuple[str, ...]:
        """Regions holding a copy of the table of that name, over every declaration of it."""
        regions = {r for t in self.tables if t.name == name for r in t.copies}
        return tuple(r for r in self.region_names if r in regions)

    def replication_of(self, table: Table) -> str:
        """How a table's data reaches another region: "global table", "local runtime" or "none"."""
        if table.is_global and len(table.copies) > 1:
            return "global table"
        # In `local` each region declares its own copy and the local runtime copies writes.
        if self.is_local and table.name and len(self.table_copies(table.name)) > 1:
            return "local runtime"
        return "none"


def has_instance_store(instance_type: str) -> bool:
    """Whether the type carries NVMe instance-store disks (the family table in stacks/config.py)."""
    return instance_type.split(".", 1)[0] in INSTANCE_STORE_FAMILIES


def source_table_names() -> tuple[str, ...]:
    """The tables every write needs (tweets, social graph, idempotency, media), by their fixed names."""
    return tuple(naming.table_name(s) for s in ALL_TABLES if s.replicated)


def _pool_replicas(pool_id: str, resources: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(
        sorted(
            r["Properties"]["RegionName"]
            for r in resources.values()
            if r.get("Type") == "AWS::Cognito::UserPoolReplica"
            and r.get("Properties", {}).get("UserPoolId") == {"Ref": pool_id}
        )
    )


def build_model(stacks: Sequence[StackTemplate]) -> Model:
    """The model of everything the stacks deploy; pure, so a test can feed it mutated templates."""
    stage, stage_basis = _stage(stacks)
    subnets: list[Subnet] = []
    fleets: list[Fleet] = []
    nat_gateways: list[NatGateway] = []
    data_volumes: list[DataVolume] = []
    tables: list[Table] = []
    raw_buckets: list[tuple[StackTemplate, str, Mapping[str, Any]]] = []
    log_buckets: set[ResourceId] = set()
    user_pools: list[UserPool] = []
    records: list[RoutingRecord] = []
    listeners: list[Listener] = []
    raw_distributions: list[tuple[ResourceId, Mapping[str, Any]]] = []
    replication_calls: list[tuple[ResourceId, dict[str, Any]]] = []

    for stack in stacks:
        resources = stack.template.get("Resources", {})
        stack_subnets = _subnets(stack, resources)
        subnets.extend(stack_subnets.values())
        specs = _launch_specs(stack, resources)
        stack_fleets = _fleets(stack, resources, stack_subnets, specs)
        fleets.extend(stack_fleets)
        nat_gateways.extend(_nat_gateways(stack, resources, stack_subnets))
        data_volumes.extend(_data_volumes(stack, resources, specs, stack_fleets))
        records.extend(_records(stack, resources))
        listeners.extend(_listeners(stack, resources))
        for logical_id, resource in resources.items():
            kind, properties = resource.get("Type", ""), resource.get("Properties", {})
            rid = ResourceId(stack.name, logical_id)
            if kind in ("AWS::DynamoDB::GlobalTable", "AWS::DynamoDB::Table"):
                tables.append(_table(rid, stack.region, kind, properties))
            elif kind == "AWS::S3::Bucket":
                raw_buckets.append((stack, logical_id, properties))
            elif kind == "AWS::Cognito::UserPool":
                user_pools.append(UserPool(rid, stack.region, _pool_replicas(logical_id, resources)))
            elif kind == "AWS::CloudFront::Distribution":
                raw_distributions.append((rid, properties.get("DistributionConfig", {})))
            elif kind.startswith("Custom::"):
                call = _sdk_call(properties)
                if call and call.get("action") == "putBucketReplication":
                    replication_calls.append((rid, call))
            log_buckets.update(ResourceId(stack.name, lid) for lid in _log_destinations(kind, properties))

    buckets = _buckets(raw_buckets, log_buckets, replication_calls)
    table_regions: dict[str, set[str]] = defaultdict(set)
    for table in tables:
        if table.name:
            table_regions[table.name].update(table.copies)
    return Model(
        stage=stage,
        stage_basis=stage_basis,
        regions=_regions(stacks, subnets, tables),
        subnets=tuple(subnets),
        fleets=tuple(fleets),
        nat_gateways=tuple(nat_gateways),
        data_volumes=tuple(data_volumes),
        tables=tuple(tables),
        buckets=buckets,
        user_pools=tuple(user_pools),
        records=tuple(records),
        listeners=tuple(listeners),
        distributions=tuple(_distribution(rid, config) for rid, config in raw_distributions),
        cross_region_references=tuple(_cross_region_references(stacks, buckets, table_regions)),
    )


# --- template intrinsics -------------------------------------------------------------------


def ref_target(value: Any) -> str | None:
    """The logical ID a {"Ref": ...} or {"Fn::GetAtt": ...} points at, else None."""
    if isinstance(value, dict):
        if isinstance(value.get("Ref"), str):
            return value["Ref"]
        attribute = value.get("Fn::GetAtt")
        if isinstance(attribute, list) and attribute:
            return attribute[0]
        if isinstance(attribute, str):
            return attribute.split(".", 1)[0]
    return None


def flatten(value: Any) -> str:
    """A template value as text: literals as they are, Fn::Join joined, other intrinsics a placeholder."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(flatten(p) for p in parts) if isinstance(parts, list) else UNRESOLVED
    if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
        return value["Fn::Sub"]
    return UNRESOLVED


def _literal_int(value: Any) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0  # a parameter or intrinsic: nothing is guaranteed to stand


def _literal_bool(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


# --- network and fleets --------------------------------------------------------------------


def _of_type(resources: Mapping[str, Any], kind: str) -> Iterable[tuple[str, Mapping[str, Any]]]:
    for logical_id, resource in resources.items():
        if resource.get("Type") == kind:
            yield logical_id, resource.get("Properties", {})


def _subnets(stack: StackTemplate, resources: Mapping[str, Any]) -> dict[str, Subnet]:
    route_table_of = {
        ref_target(p.get("SubnetId")): ref_target(p.get("RouteTableId"))
        for _, p in _of_type(resources, "AWS::EC2::SubnetRouteTableAssociation")
    }
    nats_of_table: dict[str | None, set[str]] = defaultdict(set)
    for _, route in _of_type(resources, "AWS::EC2::Route"):
        nat = ref_target(route.get("NatGatewayId"))
        if nat:
            nats_of_table[ref_target(route.get("RouteTableId"))].add(nat)
    # A NAT gateway's AZ is its own subnet's AZ.
    subnet_azs = {
        lid: p.get("AvailabilityZone") if isinstance(p.get("AvailabilityZone"), str) else UNRESOLVED
        for lid, p in _of_type(resources, "AWS::EC2::Subnet")
    }
    nat_az = {
        lid: subnet_azs.get(ref_target(p.get("SubnetId")) or "", UNRESOLVED)
        for lid, p in _of_type(resources, "AWS::EC2::NatGateway")
    }
    subnets = {}
    for lid, properties in _of_type(resources, "AWS::EC2::Subnet"):
        nats = nats_of_table.get(route_table_of.get(lid), set())
        subnets[lid] = Subnet(
            id=ResourceId(stack.name, lid),
            region=stack.region,
            az=subnet_azs[lid],
            public=_literal_bool(properties.get("MapPublicIpOnLaunch")),
            nat_gateways=tuple(sorted(nats)),
            nat_azs=tuple(sorted({nat_az.get(n, UNRESOLVED) for n in nats})),
        )
    return subnets


def _launch_specs(stack: StackTemplate, resources: Mapping[str, Any]) -> dict[str, LaunchSpec]:
    specs = {}
    for kind, data_key in (
        ("AWS::EC2::LaunchTemplate", "LaunchTemplateData"),
        ("AWS::AutoScaling::LaunchConfiguration", None),
    ):
        for lid, properties in _of_type(resources, kind):
            data = properties.get(data_key, {}) if data_key else properties
            instance_type = data.get("InstanceType")
            specs[lid] = LaunchSpec(
                id=ResourceId(stack.name, lid),
                instance_type=instance_type if isinstance(instance_type, str) else None,
                data_devices=tuple(
                    str(m.get("DeviceName"))
                    for m in data.get("BlockDeviceMappings", [])
                    if "Ebs" in m and m.get("DeviceName") not in ROOT_DEVICES
                ),
            )
    return specs


def _fleets(
    stack: StackTemplate,
    resources: Mapping[str, Any],
    subnets: Mapping[str, Subnet],
    specs: Mapping[str, LaunchSpec],
) -> list[Fleet]:
    fleets = []
    for lid, properties in _of_type(resources, "AWS::AutoScaling::AutoScalingGroup"):
        mixed = properties.get("MixedInstancesPolicy", {}).get("LaunchTemplate", {})
        template_ref = (
            properties.get("LaunchTemplate") or mixed.get("LaunchTemplateSpecification") or {}
        ).get("LaunchTemplateId")
        spec = specs.get(
            ref_target(template_ref) or ref_target(properties.get("LaunchConfigurationName")) or ""
        )
        overrides = [o.get("InstanceType") for o in mixed.get("Overrides", []) if o.get("InstanceType")]
        if overrides:
            instance_types = tuple(t if isinstance(t, str) else UNRESOLVED for t in overrides)
        elif spec and spec.instance_type:
            instance_types = (spec.instance_type,)
        else:
            instance_types = ()
        zone_ids = properties.get("VPCZoneIdentifier", [])
        placed = [
            subnets[t]
            for t in map(ref_target, zone_ids if isinstance(zone_ids, list) else [])
            if t in subnets
        ]
        fleets.append(
            Fleet(
                id=ResourceId(stack.name, lid),
                region=stack.region,
                subnets=tuple(placed),
                min_size=_literal_int(properties.get("MinSize")),
                max_size=_literal_int(properties.get("MaxSize")),
                launch=spec,
                instance_types=instance_types,
            )
        )
    return fleets


def _nat_gateways(
    stack: StackTemplate, resources: Mapping[str, Any], subnets: Mapping[str, Subnet]
) -> list[NatGateway]:
    gateways = []
    for lid, properties in _of_type(resources, "AWS::EC2::NatGateway"):
        home = subnets.get(ref_target(properties.get("SubnetId")) or "")
        served = tuple(s for s in subnets.values() if lid in s.nat_gateways)
        gateways.append(
            NatGateway(ResourceId(stack.name, lid), stack.region, home.az if home else UNRESOLVED, served)
        )
    return gateways


def _data_volumes(
    stack: StackTemplate,
    resources: Mapping[str, Any],
    specs: Mapping[str, LaunchSpec],
    fleets: Sequence[Fleet],
) -> list[DataVolume]:
    volumes = []
    for spec in specs.values():
        users = tuple(f.id for f in fleets if f.launch == spec)
        volumes.extend(
            DataVolume(
                spec.id, stack.region, None, f"EBS data volume {device} in every host it launches", users
            )
            for device in spec.data_devices
        )
    for lid, properties in _of_type(resources, "AWS::EC2::Volume"):
        az = properties.get("AvailabilityZone")
        volumes.append(
            DataVolume(
                ResourceId(stack.name, lid),
                stack.region,
                az if isinstance(az, str) else UNRESOLVED,
                "standalone EBS volume",
            )
        )
    for lid, properties in _of_type(resources, "AWS::EC2::VolumeAttachment"):
        volumes.append(
            DataVolume(
                ResourceId(stack.name, lid),
                stack.region,
                None,
                f"EBS volume attached as {properties.get('Device', '?')}",
            )
        )
    return volumes


def _regions(
    stacks: Sequence[StackTemplate], subnets: Sequence[Subnet], tables: Sequence[Table]
) -> tuple[Region, ...]:
    names = list(dict.fromkeys(s.region for s in stacks))  # manifest order: the primary comes first
    # A region whose stacks only hold a CloudFront distribution and what it needs (its certificate
    # must be in us-east-1) serves nobody from there: it is not one of the app's regions.
    names = [
        n
        for n in names
        if any(s.region == n for s in subnets)
        or any(t.region == n for t in tables)
        or not any(_declares(s, "AWS::CloudFront::Distribution") for s in stacks if s.region == n)
    ]
    return tuple(
        Region(
            name=name,
            stacks=tuple(s.name for s in stacks if s.region == name),
            azs=tuple(sorted({s.az for s in subnets if s.region == name})),
        )
        for name in names
    )


def _declares(stack: StackTemplate, kind: str) -> bool:
    return any(r.get("Type") == kind for r in stack.template.get("Resources", {}).values())


# --- routing ---------------------------------------------------------------------------------


def _records(stack: StackTemplate, resources: Mapping[str, Any]) -> list[RoutingRecord]:
    checks = {}
    for lid, properties in _of_type(resources, "AWS::Route53::HealthCheck"):
        config = properties.get("HealthCheckConfig", {})
        checks[lid] = HealthCheck(
            id=ResourceId(stack.name, lid),
            kind=str(config.get("Type", UNRESOLVED)),
            request_interval=_literal_int(config.get("RequestInterval", 30)),  # Route 53's default
            failure_threshold=_literal_int(config.get("FailureThreshold", 3)),
        )
    records = []
    for lid, properties in _of_type(resources, "AWS::Route53::RecordSet"):
        alias = properties.get("AliasTarget", {})
        health_id = properties.get("HealthCheckId")
        region = properties.get("Region")
        records.append(
            RoutingRecord(
                id=ResourceId(stack.name, lid),
                region=stack.region,
                name=flatten(properties.get("Name")).rstrip("."),
                record_type=str(properties.get("Type", UNRESOLVED)),
                latency_region=region if isinstance(region, str) else None,
                health_check=checks.get(ref_target(health_id) or ""),
                follows_health=health_id is not None or _literal_bool(alias.get("EvaluateTargetHealth")),
            )
        )
    return records


def _listeners(stack: StackTemplate, resources: Mapping[str, Any]) -> list[Listener]:
    def redirects_to_https(actions: Any) -> bool:
        return (
            isinstance(actions, list)
            and bool(actions)
            and all(
                a.get("Type") == "redirect" and a.get("RedirectConfig", {}).get("Protocol") == "HTTPS"
                for a in actions
            )
        )

    forwarding: dict[str, list[ResourceId]] = defaultdict(list)
    for lid, properties in _of_type(resources, "AWS::ElasticLoadBalancingV2::ListenerRule"):
        if not redirects_to_https(properties.get("Actions")):
            forwarding[ref_target(properties.get("ListenerArn")) or ""].append(ResourceId(stack.name, lid))
    return [
        Listener(
            id=ResourceId(stack.name, lid),
            region=stack.region,
            port=_literal_int(properties.get("Port")),
            protocol=str(properties.get("Protocol", UNRESOLVED)),
            redirects_to_https=redirects_to_https(properties.get("DefaultActions")),
            forwarding_rules=tuple(forwarding.get(lid, ())),
        )
        for lid, properties in _of_type(resources, "AWS::ElasticLoadBalancingV2::Listener")
    ]


def _distribution(rid: ResourceId, config: Mapping[str, Any]) -> Distribution:
    # An S3 origin's domain is <bucket>.s3.<region>.amazonaws.com (or <bucket>.s3.amazonaws.com).
    buckets = {
        o.get("Id"): flatten(o.get("DomainName")).split(".s3.", 1)[0]
        for o in config.get("Origins", [])
        if "S3OriginConfig" in o or ".s3." in flatten(o.get("DomainName"))
    }
    groups = {
        g.get("Id"): tuple(
            buckets[m.get("OriginId")]
            for m in g.get("Members", {}).get("Items", [])
            if m.get("OriginId") in buckets
        )
        for g in config.get("OriginGroups", {}).get("Items", [])
    }

    def reads(behaviour: Mapping[str, Any]) -> tuple[str, ...]:
        target = behaviour.get("TargetOriginId")
        return groups.get(target) or tuple(filter(None, (buckets.get(target),)))

    behaviours = [("*", reads(config.get("DefaultCacheBehavior", {})))]
    behaviours += [(str(b.get("PathPattern")), reads(b)) for b in config.get("CacheBehaviors", [])]
    return Distribution(rid, tuple(dict.fromkeys(buckets.values())), tuple(behaviours))


# --- stage -----------------------------------------------------------------------------------


def _stage(stacks: Sequence[StackTemplate]) -> tuple[str, str]:
    # The app tags every prod resource with its stage; `local` carries no tags at all, because
    # moto's CloudFormation misreads some (stacks/aviary_app.py).
    values = {
        tag.get("Value")
        for stack in stacks
        for resource in stack.template.get("Resources", {}).values()
        for tag in _tags(resource.get("Properties", {}))
        if tag.get("Key") == "stage"
    }
    if len(values) == 1:
        [value] = values
        return str(value), "the 'stage' tag on the templates' resources"
    if values:
        return "prod", f"conflicting 'stage' tags ({', '.join(sorted(map(str, values)))}); judged as prod"
    return "local", "no resource carries a 'stage' tag, which only the local stage omits"


def _tags(properties: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    tags = properties.get("Tags")
    return [t for t in tags if isinstance(t, dict)] if isinstance(tags, list) else []


# --- tables ----------------------------------------------------------------------------------


def _table(rid: ResourceId, region: str, kind: str, properties: Mapping[str, Any]) -> Table:
    name = properties.get("TableName") if isinstance(properties.get("TableName"), str) else None
    if kind == "AWS::DynamoDB::GlobalTable":
        replicas = properties.get("Replicas") or [{"Region": region}]
        copies = tuple(
            dict.fromkeys(r.get("Region") if isinstance(r.get("Region"), str) else region for r in replicas)
        )
        pitr = all(_pitr(r.get("PointInTimeRecoverySpecification")) for r in replicas)
        is_global = True
    else:
        copies = (region,)
        pitr = _pitr(properties.get("PointInTimeRecoverySpecification"))
        is_global = False
    return Table(rid, region, name, _table_kind(name, properties), is_global, copies, pitr)


def _pitr(specification: Any) -> bool:
    return isinstance(specification, dict) and _literal_bool(specification.get("PointInTimeRecoveryEnabled"))


def _table_kind(name: str | None, properties: Mapping[str, Any]) -> str:
    # Source tables have fixed names; derived tables (Timelines) are named by CloudFormation
    # and recognised by the key schema the stacks build them from.
    if name in source_table_names():
        return "source"
    keys = {k.get("KeyType"): k.get("AttributeName") for k in properties.get("KeySchema", [])}
    for schema in ALL_TABLES:
        if not schema.replicated and keys == _key_names(schema):
            return "derived"
    return "other"


def _key_names(schema: TableSchema) -> dict[str, str]:
    keys = {"HASH": schema.partition_key.name}
    if schema.sort_key:
        keys["RANGE"] = schema.sort_key.name
    return keys


# --- buckets ---------------------------------------------------------------------------------


def _log_destinations(kind: str, properties: Mapping[str, Any]) -> Iterable[str]:
    """Logical IDs of buckets this resource writes logs into (same stack)."""
    if kind == "AWS::S3::Bucket":
        target = ref_target(properties.get("LoggingConfiguration", {}).get("DestinationBucketName"))
        if target:
            yield target
    elif kind == "AWS::ElasticLoadBalancingV2::LoadBalancer":
        for attribute in properties.get("LoadBalancerAttributes", []):
            if attribute.get("Key") == "access_logs.s3.bucket" and ref_target(attribute.get("Value")):
                yield ref_target(attribute.get("Value"))
    elif kind == "AWS::CloudFront::Distribution":
        target = ref_target(properties.get("DistributionConfig", {}).get("Logging", {}).get("Bucket"))
        if target:
            yield target
    elif kind == "AWS::EC2::FlowLog" and properties.get("LogDestinationType") == "s3":
        target = ref_target(properties.get("LogDestination"))
        if target:
            yield target


def _sdk_call(properties: Mapping[str, Any]) -> dict[str, Any] | None:
    """The SDK call an AwsCustomResource makes on create, as JSON, or None if it is not one."""
    create = properties.get("Create")
    if create is None:
        return None
    # Deploy-time values (such as a role ARN) sit inside JSON strings, so a quoted placeholder parses.
    try:
        call = json.loads(flatten(create))
    except json.JSONDecodeError:
        return None
    return call if isinstance(call, dict) else None


def _buckets(
    raw: Sequence[tuple[StackTemplate, str, Mapping[str, Any]]],
    log_buckets: set[ResourceId],
    replication_calls: Sequence[tuple[ResourceId, dict[str, Any]]],
) -> tuple[Bucket, ...]:
    region_of_name = {
        p["BucketName"]: stack.region for stack, _, p in raw if isinstance(p.get("BucketName"), str)
    }

    def destinations(rules: Any) -> tuple[tuple[str, ...], bool]:
        enabled = [r for r in rules if isinstance(r, dict) and r.get("Status") == "Enabled"]
        regions = []
        for rule in enabled:
            match = _S3_ARN.match(flatten(rule.get("Destination", {}).get("Bucket")))
            regions.append(region_of_name.get(match.group(1), UNRESOLVED) if match else UNRESOLVED)
        timed = bool(enabled) and all("ReplicationTime" in r.get("Destination", {}) for r in enabled)
        return tuple(dict.fromkeys(regions)), timed

    by_call: dict[str, tuple[ResourceId, tuple[str, ...], bool]] = {}
    for rid, call in replication_calls:
        parameters = call.get("parameters", {})
        rules = parameters.get("ReplicationConfiguration", {}).get("Rules", [])
        by_call[str(parameters.get("Bucket"))] = (rid, *destinations(rules))

    buckets = []
    for stack, lid, properties in raw:
        rid = ResourceId(stack.name, lid)
        name = properties.get("BucketName") if isinstance(properties.get("BucketName"), str) else None
        replicated_to: tuple[str, ...] = ()
        replication: ResourceId | None = None
        timed = False
        native = properties.get("ReplicationConfiguration", {}).get("Rules")
        if native:
            replicated_to, timed = destinations(native)
            replication = rid
        elif name in by_call:
            replication, replicated_to, timed = by_call[name]
        buckets.append(
            Bucket(
                id=rid,
                region=stack.region,
                name=name,
                role="logs" if rid in log_buckets else "data",
                versioned=properties.get("VersioningConfiguration", {}).get("Status") == "Enabled",
                replicated_to=tuple(r for r in replicated_to if r != stack.region),
                replication=replication,
                time_control=timed,
            )
        )
    return tuple(buckets)


# --- functions -------------------------------------------------------------------------------


def _cross_region_references(
    stacks: Sequence[StackTemplate], buckets: Sequence[Bucket], table_regions: Mapping[str, set[str]]
) -> Iterable[CrossRegionReference]:
    # Named things and the regions they live in; a function must find what it names at home.
    homes: dict[str, set[str]] = {b.name: {b.region} for b in buckets if b.name}
    homes.update(table_regions)
    for stack in stacks:
        for lid, properties in _of_type(stack.template.get("Resources", {}), "AWS::Lambda::Function"):
            for variable, value in properties.get("Environment", {}).get("Variables", {}).items():
                target = _named_target(value, homes)
                if target and stack.region not in target[1]:
                    yield CrossRegionReference(
                        ResourceId(stack.name, lid),
                        stack.region,
                        variable,
                        target[0],
                        tuple(sorted(target[1])),
                    )


def _named_target(value: Any, homes: Mapping[str, set[str]]) -> tuple[str, set[str]] | None:
    """What a variable names and the regions that hold it, if it names something region-bound."""
    if isinstance(value, dict) and isinstance(value.get("Fn::GetStackOutput"), dict):
        output = value["Fn::GetStackOutput"]
        return f"an output of {output.get('StackName')}", {str(output.get("Region"))}
    text = flatten(value)
    if text in homes:
        return text, homes[text]
    match = _ARN_REGION.search(text)
    return (text, {match.group(1)}) if match else None
