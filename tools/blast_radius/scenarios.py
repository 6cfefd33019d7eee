"""Evaluates failure scenarios over a Model: read capacity left, writes, data at risk, principles.

Pure: a Model and the required read capacity in, a Report out. A finding names the principle of
docs/architecture.md it touches (by its name in that page's table); a violation is a finding that
breaks it, and makes the report fail.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tools.blast_radius.model import (
    UNRESOLVED,
    Fleet,
    Model,
    ResourceId,
    RoutingRecord,
    UserPool,
    source_table_names,
)

# The principles, exactly as the architecture page's table names them (a test holds the two together).
PRINCIPLES_PAGE = "docs/architecture.md"
SINGLE_HOST = "Unit of failure is a single host"
RELAX_CONSISTENCY = "Relax consistency"
STATIC_STABILITY = "Static stability"
DISASTER_RECOVERY = "Disaster recovery"

REPLICATION_LAG = "asynchronous, typically under a second"
# What the README promises a region's failure costs a name before Route 53 stops answering with it.
MAX_DETECTION_SECONDS = 10 * 3
# An alias record to a load balancer or an API Gateway domain is answered with a 60 s TTL.
ALIAS_TTL_SECONDS = 60


@dataclass(frozen=True)
class Finding:
    principle: str
    resources: tuple[ResourceId, ...]
    message: str
    fix: str = ""
    violation: bool = False

    def line(self) -> str:
        """One line a person can act on: principle, resources (stack/logical ID), what, and the fix."""
        where = ", ".join(map(str, self.resources)) or "assembly"
        fix = f" Fix: {self.fix}" if self.fix else ""
        return f"[{self.principle}] {where}: {self.message}{fix}"


@dataclass(frozen=True)
class RegionOutcome:
    """One region's read capacity in one scenario: serving hosts left against the required count."""

    region: str
    lost: str  # what failed in this region: "-", an AZ, "1 host", "region", "DynamoDB", "S3"
    hosts: int
    required: int
    status: str  # "up", "degraded" or "down"
    note: str = ""

    @property
    def percent(self) -> int:
        # Rounded down: the report never claims capacity a region does not have.
        return self.hosts * 100 // self.required

    @property
    def sufficient(self) -> bool:
        return self.hosts >= self.required


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # "steady", "host", "az", "region", "dynamodb" or "s3"
    outcomes: tuple[RegionOutcome, ...]
    writes_survive: bool
    writes: str
    data_at_risk: tuple[str, ...]
    principles: tuple[str, ...]
    notes: tuple[str, ...] = ()
    failed_region: str | None = None  # the region a region, DynamoDB or S3 scenario fails

    @property
    def capacity_ok(self) -> bool:
        """Every region still up keeps the required capacity (a region that is down fails over)."""
        return all(o.sufficient for o in self.outcomes if o.status != "down")


@dataclass(frozen=True)
class RegionSummary:
    name: str
    azs: tuple[str, ...]
    fleets: int
    hosts: int  # serving hosts standing with nothing failed
    max_hosts: int


@dataclass(frozen=True)
class Report:
    assembly: str
    stage: str
    stage_basis: str
    required_read_capacity: int
    required_source: str
    regions: tuple[RegionSummary, ...]
    scenarios: tuple[Scenario, ...]
    findings: tuple[Finding, ...]

    @property
    def violations(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.violation)

    @property
    def exit_status(self) -> int:
        return 1 if self.violations else 0


def evaluate(model: Model, *, required: int, required_source: str, assembly: str = "") -> Report:
    """Every scenario over the model, and every finding: structural ones and failed scenarios."""
    if required < 1:
        raise ValueError(f"required read capacity must be at least 1 host, not {required}")
    scenarios = [
        _steady(model, required),
        _one_host(model, required),
        _one_az(model, required),
        *(_region_lost(model, required, r) for r in model.region_names),
        *(_dynamodb_down(model, required, r) for r in model.region_names),
        *(_s3_down(model, required, r) for r in model.region_names),
    ]
    findings = [*_structural_findings(model), *_scenario_violations(model, required, scenarios)]
    return Report(
        assembly=assembly,
        stage=model.stage,
        stage_basis=model.stage_basis,
        required_read_capacity=required,
        required_source=required_source,
        regions=tuple(
            RegionSummary(
                name=r.name,
                azs=r.azs,
                fleets=len(model.fleets_in(r.name)),
                hosts=model.standing_hosts(r.name),
                max_hosts=sum(f.max_size for f in model.fleets_in(r.name)),
            )
            for r in model.regions
        ),
        scenarios=tuple(scenarios),
        findings=tuple(_unique(findings)),
    )


# --- writes ----------------------------------------------------------------------------------


def write_regions(model: Model) -> tuple[str, ...]:
    """Regions that hold a copy of every source table: a write (one transaction) can land there."""
    return tuple(
        r for r in model.region_names if all(r in model.table_copies(n) for n in source_table_names())
    )


def _writes_without(model: Model, lost: str) -> tuple[bool, str]:
    survivors = [r for r in write_regions(model) if r != lost]
    if survivors:
        return True, f"yes: every source table has a copy in {', '.join(survivors)}"
    missing = [n for n in source_table_names() if not set(model.table_copies(n)) - {lost}]
    return False, f"NO: {', '.join(missing)} {'has' if len(missing) == 1 else 'have'} no copy outside {lost}"


def _writes_unaffected(model: Model) -> tuple[bool, str]:
    regions = write_regions(model)
    if not regions:
        return False, "NO: no region holds a copy of every source table"
    return True, f"yes, in {', '.join(regions)}: the write path (Lambda, DynamoDB) uses none of our hosts"


# --- scenarios -------------------------------------------------------------------------------


def _outcome(
    model: Model, required: int, region: str, lost: str = "-", status: str = "up", note: str = ""
) -> RegionOutcome:
    return RegionOutcome(region, lost, model.standing_hosts(region), required, status, note)


def _steady(model: Model, required: int) -> Scenario:
    survive, writes = _writes_unaffected(model)
    return Scenario(
        name="Steady state (nothing failed)",
        kind="steady",
        outcomes=tuple(_outcome(model, required, r) for r in model.region_names),
        writes_survive=survive,
        writes=writes,
        data_at_risk=("none",),
        principles=(STATIC_STABILITY,),
    )


def _one_host(model: Model, required: int) -> Scenario:
    outcomes = tuple(
        RegionOutcome(r, "1 host", max(model.standing_hosts(r) - 1, 0), required, "up")
        for r in model.region_names
    )
    at_risk = tuple(f"{v.detail} ({v.id}): a replacement host starts without it" for v in model.data_volumes)
    survive, writes = _writes_unaffected(model)
    return Scenario(
        name="One host lost (any host, in each region)",
        kind="host",
        outcomes=outcomes,
        writes_survive=survive,
        writes=writes,
        data_at_risk=at_risk or ("none: a host keeps only a disposable cache on its instance store",),
        principles=(SINGLE_HOST,),
        notes=(
            "the Auto Scaling group replaces the host from its launch template; the rest serve meanwhile",
        ),
    )


def worst_az(model: Model, region: str) -> tuple[str, int]:
    """The AZ whose loss leaves the fewest serving hosts in the region, and how many are left."""
    fleets = model.fleets_in(region)
    standing = model.standing_hosts(region)
    azs = next(r.azs for r in model.regions if r.name == region) or ("-",)
    left = {az: standing - sum(f.hosts_lost_with_az(az) for f in fleets) for az in azs}
    az = min(azs, key=lambda a: left[a])
    return az, left[az]


def _one_az(model: Model, required: int) -> Scenario:
    outcomes = []
    for region in model.region_names:
        az, left = worst_az(model, region)
        elsewhere = sum(
            f.hosts_lost_with_az(az) for f in model.fleets_in(region) if az not in f.azs
        )  # hosts in other AZs that depend on this one (egress through its NAT)
        note = f"{elsewhere} hosts in other AZs lose their egress with it" if elsewhere else ""
        outcomes.append(
            RegionOutcome(region, az, left, required, "degraded" if left < required else "up", note)
        )
    stranded = tuple(
        f"{v.detail} ({v.id}) in {v.az}: unreachable while its AZ is down" for v in model.data_volumes if v.az
    )
    survive, writes = _writes_unaffected(model)
    return Scenario(
        name="One AZ lost (worst AZ per region)",
        kind="az",
        outcomes=tuple(outcomes),
        writes_survive=survive,
        writes=writes,
        data_at_risk=stranded or ("none: tables and buckets are regional, stored across AZs",),
        principles=(STATIC_STABILITY,),
        notes=(
            "each AZ of each region was failed in turn; the worst AZ per region is shown",
            "only hosts standing in the other AZs are counted: no scaling action",
        ),
    )


def _region_lost(model: Model, required: int, lost: str) -> Scenario:
    failover = "traffic fails over to the other regions"
    if model.failover_records:
        failover += " (Route 53 health checks)"
    elif model.is_local:
        failover += " (the local front door's health checks)"
    else:
        failover += "; no Route 53 health check: clients switch"
    outcomes = tuple(
        RegionOutcome(r, "region", 0, required, "down", failover)
        if r == lost
        else _outcome(model, required, r, note=f"also serves {lost}'s readers")
        for r in model.region_names
    )
    survive, writes = _writes_without(model, lost)
    return Scenario(
        name=f"Region {lost} lost",
        kind="region",
        outcomes=outcomes,
        writes_survive=survive,
        writes=writes,
        data_at_risk=tuple(_region_data_at_risk(model, lost)) or ("none",),
        principles=(DISASTER_RECOVERY, RELAX_CONSISTENCY),
        notes=tuple(_region_notes(model, required, lost)),
        failed_region=lost,
    )


def _region_data_at_risk(model: Model, lost: str) -> Iterable[str]:
    replicated: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for table in (t for t in model.tables if lost in t.copies):
        replication = model.replication_of(table)
        if table.kind == "derived":
            yield f"none from {table.id}: derived data (timelines), rebuilt from the tweet stream"
        elif replication == "none":
            yield f"{table.label} ({table.id}): everything in it; no copy outside {lost}"
        else:
            others = tuple(r for r in table.copies if r != lost)
            replicated.setdefault((replication, others), []).append(table.label)
    for (replication, others), labels in replicated.items():
        if replication == "global table":
            yield (
                f"{', '.join(labels)}: none beyond replication lag "
                f"(global tables, replicas in {', '.join(others)}; {REPLICATION_LAG})"
            )
        else:
            yield (
                f"{', '.join(labels)}: local emulation (the local runtime copies them between regions; "
                "RPO is whatever it had not copied yet)"
            )
    for bucket in (b for b in model.buckets if b.region == lost):
        if bucket.role == "logs":
            yield f"access logs in {bucket.id}: operational records, not user data"
        elif bucket.replicated_to:
            bound = (
                "15-minute Replication Time Control" if bucket.time_control else "no time bound without RTC"
            )
            targets = ", ".join(bucket.replicated_to)
            yield f"{bucket.label}: none beyond replication lag (replicated to {targets}; {bound})"
        elif model.is_local:
            yield f"{bucket.label}: local emulation (the local runtime copies media between regions)"
        else:
            yield f"{bucket.label} ({bucket.id}): every object; it has no replica"
    for pool in (p for p in model.user_pools if p.region == lost):
        if pool.replica_regions:
            replicas = ", ".join(pool.replica_regions)
            yield f"user accounts in {pool.id}: none beyond replication lag (Cognito replica in {replicas})"
        else:
            yield f"user accounts in {pool.id}: it has no replica (back only if {lost} is)"


def _region_notes(model: Model, required: int, lost: str) -> Iterable[str]:
    for name in model.latency_names:
        checks = [r.health_check for r in model.latency_records(name, lost) if r.health_check]
        if checks:
            detection = max(c.detection_seconds for c in checks)
            yield (
                f"{name}: Route 53 stops answering with {lost} about {detection} s after it fails; clients "
                f"follow within the {ALIAS_TTL_SECONDS} s record TTL plus their resolvers' caching"
            )
    region_of = {b.name: b.region for b in model.buckets if b.role == "data" and b.name}
    for distribution in model.distributions:
        for pattern, buckets in distribution.behaviours:
            regions = [region_of.get(b, UNRESOLVED) for b in buckets]
            if len(regions) > 1 and lost in regions:
                others = ", ".join(r for r in regions if r != lost)
                where = f"media ({distribution.id}, {pattern})"
                yield f"{where}: CloudFront reads from {others} instead, per request"
    survivors = [r for r in model.region_names if r != lost]
    standing = sum(model.standing_hosts(r) for r in survivors)
    needed = required * len(model.region_names)
    ceiling = sum(f.max_size for r in survivors for f in model.fleets_in(r))
    if survivors and standing < needed:
        yield (
            f"capacity is per region's own readers: to carry {lost}'s as well, the survivors need "
            f"{needed} hosts, stand {standing}, and can scale to {ceiling} (a scaling action)"
        )
    for pool in model.user_pools:
        yield from _identity_after_loss(pool, lost)
    for reference in model.cross_region_references:
        if lost in reference.target_regions and reference.region != lost:
            yield (
                f"{reference.function} in {reference.region} fails too: "
                f"{reference.variable} names {reference.target}"
            )


def _dynamodb_down(model: Model, required: int, region: str) -> Scenario:
    survive, writes = _writes_without(model, region)
    if survive:
        others = ", ".join(r for r in write_regions(model) if r != region)
        writes = f"fail in {region}; succeed in {others} (a copy of every source table there)"
    at_risk = (
        "local emulation: the local runtime copies writes once it can reach both regions again"
        if model.is_local
        else f"none lost: DynamoDB keeps what it acknowledged; the rest replicates when {region} recovers"
    )
    return Scenario(
        name=f"DynamoDB unavailable in {region}",
        kind="dynamodb",
        outcomes=tuple(
            _outcome(model, required, r, "DynamoDB", "degraded", "hosts answer from their cache; misses fail")
            if r == region
            else _outcome(model, required, r)
            for r in model.region_names
        ),
        writes_survive=survive,
        writes=writes,
        data_at_risk=(at_risk,),
        principles=(RELAX_CONSISTENCY, DISASTER_RECOVERY),
        notes=(
            f"{region}'s fan-out pauses; stream records are kept 24 hours, so its derived timelines catch up",
        ),
        failed_region=region,
    )


def _s3_down(model: Model, required: int, region: str) -> Scenario:
    media = [b for b in model.buckets if b.role == "data"]
    elsewhere = sorted({b.region for b in media if b.region != region})
    tables_ok, _ = _writes_unaffected(model)
    uploads = f"uploads go to {', '.join(elsewhere)}" if elsewhere else "no other region has a media bucket"
    at_risk = []
    for bucket in (b for b in media if b.region == region):
        if model.is_local:
            at_risk.append(f"local emulation: {bucket.label} is copied by the local runtime once S3 is back")
        elif bucket.replicated_to:
            at_risk.append(
                f"none lost: objects in {bucket.label} not yet replicated are unreadable elsewhere "
                "until S3 recovers"
            )
        else:
            at_risk.append(
                f"every object in {bucket.label} ({bucket.id}) is unreadable until S3 recovers: no replica"
            )
    return Scenario(
        name=f"S3 unavailable in {region}",
        kind="s3",
        outcomes=tuple(
            _outcome(
                model,
                required,
                r,
                "S3",
                "degraded",
                "running hosts serve; a replacement cannot boot (bundle from S3)",
            )
            if r == region
            else _outcome(model, required, r)
            for r in model.region_names
        ),
        writes_survive=tables_ok and bool(elsewhere),
        writes=f"tweets, follows and likes unaffected (DynamoDB); media uploads in {region} fail, {uploads}",
        data_at_risk=tuple(at_risk) or ("none",),
        principles=(STATIC_STABILITY, DISASTER_RECOVERY),
        failed_region=region,
    )


# --- findings --------------------------------------------------------------------------------


def _scenario_violations(model: Model, required: int, scenarios: Sequence[Scenario]) -> Iterable[Finding]:
    short_already = set()  # regions short with nothing failed: every failure there is short too
    for scenario in scenarios:
        # A surviving region's capacity in a region scenario is its steady state, judged there.
        if scenario.kind in ("steady", "host", "az"):
            for outcome in (o for o in scenario.outcomes if not o.sufficient):
                if outcome.region not in short_already:
                    yield _capacity_violation(model, required, scenario, outcome)
                if scenario.kind == "steady":
                    short_already.add(outcome.region)
        if not scenario.writes_survive and scenario.kind == "region":
            lost = scenario.failed_region
            missing = [n for n in source_table_names() if not set(model.table_copies(n)) - {lost}]
            yield Finding(
                DISASTER_RECOVERY,
                tuple(t.id for t in model.tables if t.name in missing),
                f"losing {lost} stops every write: {', '.join(missing)} "
                f"{'has' if len(missing) == 1 else 'have'} no copy in another region.",
                "make every source table a global table with a replica in every region "
                "(stacks/components/source_tables.py).",
                violation=True,
            )


def _capacity_violation(model: Model, required: int, scenario: Scenario, outcome: RegionOutcome) -> Finding:
    fleets = model.fleets_in(outcome.region)
    azs = sorted({az for f in fleets for az in f.azs})
    what = {
        "steady": f"with nothing failed, {outcome.region} stands",
        "host": f"losing one host leaves {outcome.region}",
        "az": f"losing {outcome.lost} leaves {outcome.region}",
    }[scenario.kind]
    message = f"{what} {outcome.hosts} of {required} required serving hosts ({outcome.percent} %)"
    message += f": {outcome.note}." if outcome.note else "."
    # The fix addresses the cause: hosts that cannot serve, shared egress, one AZ, or small groups.
    if any(f.min_size and not f.instance_store for f in fleets):
        fix = (
            "give these groups an instance-store instance type (see the violation on their launch template)."
        )
    elif outcome.note:
        fix = "let no AZ's subnets route through another AZ (see the NAT gateway violation)."
    elif len(azs) < 2:
        fix = "spread the hosts over at least two AZs, one zonal group per AZ (context azsPerRegion)."
    else:
        fix = (
            f"give each of the {len(azs)} zonal groups MinSize >= "
            f"ceil({required} / ({len(azs)} - 1)) = {math.ceil(required / (len(azs) - 1))} "
            "(DeploymentConfig.hosts_per_az, from readCapacityPerRegion)."
        )
    principle = SINGLE_HOST if scenario.kind == "host" else STATIC_STABILITY
    return Finding(principle, tuple(f.id for f in fleets), message, fix, violation=True)


def _structural_findings(model: Model) -> Iterable[Finding]:
    yield from _host_findings(model)
    yield from _network_findings(model)
    yield from _table_findings(model)
    yield from _bucket_findings(model)
    yield from _region_findings(model)
    yield from _routing_findings(model)
    yield from _listener_findings(model)
    yield from _media_findings(model)


def _host_findings(model: Model) -> Iterable[Finding]:
    by_launch: dict[ResourceId | None, list[Fleet]] = {}
    for fleet in model.fleets:
        if not fleet.instance_store:
            by_launch.setdefault(fleet.launch.id if fleet.launch else None, []).append(fleet)
    for launch, fleets in by_launch.items():
        stated = {t for f in fleets for t in f.instance_types if t != UNRESOLVED}
        types = sorted(stated) or ["an instance type the template leaves to deploy time"]
        hosts = sum(f.min_size for f in fleets)
        yield Finding(
            SINGLE_HOST,
            tuple(filter(None, (launch,))) + tuple(f.id for f in fleets),
            f"{', '.join(types)} has no NVMe instance store: aviary-local-disks fails at boot and "
            f"the timeline service never starts, so their {hosts} hosts serve nothing.",
            "use an instance-store type (a 'd' family such as m6id, c6id, r6id, or i4i): "
            "context hostInstanceType.",
            violation=True,
        )
    for volume in model.data_volumes:
        yield Finding(
            SINGLE_HOST,
            (volume.id, *volume.fleets),
            f"{volume.detail}: host state on EBS outlives the host and is tied to one AZ, "
            "so a host is no longer a disposable unit of failure.",
            "remove it; hosts keep their cache on the instance store at /data and rebuild it from DynamoDB.",
            violation=True,
        )
    for region in model.region_names:
        fleets = model.fleets_in(region)
        azs = sorted({az for f in fleets for az in f.azs})
        if fleets and len(azs) < 2:
            subnets = sorted({str(s.id) for f in fleets for s in f.subnets})
            yield Finding(
                STATIC_STABILITY,
                tuple(f.id for f in fleets),
                f"every timeline host of {region} is in {', '.join(azs) or 'no known AZ'} "
                f"(subnets {', '.join(subnets)}): losing that AZ loses them all.",
                "lay the VPC over at least two AZs, each with its own zonal group (context azsPerRegion).",
                violation=True,
            )


def _network_findings(model: Model) -> Iterable[Finding]:
    for nat in model.nat_gateways:
        foreign = nat.foreign_subnets
        if foreign:
            yield Finding(
                STATIC_STABILITY,
                (nat.id, *(s.id for s in foreign)),
                f"NAT gateway in {nat.az} carries the egress of subnets in "
                f"{', '.join(sorted({s.az for s in foreign}))}: losing {nat.az} cuts them off too.",
                "remove it (S3 and DynamoDB are reached through gateway endpoints) or give each AZ its own "
                "NAT gateway and route table.",
                violation=True,
            )
        else:
            yield Finding(STATIC_STABILITY, (nat.id,), f"NAT gateway serving only its own AZ ({nat.az}).")


def _table_findings(model: Model) -> Iterable[Finding]:
    derived = tuple(t.id for t in model.tables if t.kind == "derived")
    if derived:
        yield Finding(
            RELAX_CONSISTENCY,
            derived,
            "derived data (timelines): materialised per region from the tweet stream and rebuilt from it; "
            "not replicated on purpose, not data at risk.",
        )
    emulated = tuple(
        t.id for t in model.tables if t.kind != "derived" and model.replication_of(t) == "local runtime"
    )
    if emulated:
        yield Finding(
            DISASTER_RECOVERY,
            emulated,
            "per-region copies that the local runtime replicates (local emulation: no AWS replication "
            "guarantee; RPO is whatever it had not copied yet).",
        )
    for table in (t for t in model.tables if t.kind != "derived"):
        replication = model.replication_of(table)
        if replication == "none":
            per_region = not table.is_global and len(model.table_copies(table.label)) > 1
            why = (
                "each region declares its own copy and nothing replicates them"
                if per_region
                else f"its only copy is in {', '.join(table.copies)}"
            )
            yield Finding(
                DISASTER_RECOVERY,
                (table.id,),
                f"{table.label} is not replicated: {why}; losing that region loses its data.",
                "declare it as a global table with a replica in every region "
                "(stacks/components/source_tables.py).",
                violation=True,
            )
        elif replication == "global table" and set(model.region_names) - set(table.copies):
            absent = sorted(set(model.region_names) - set(table.copies))
            yield Finding(
                DISASTER_RECOVERY, (table.id,), f"{table.label} has no replica in {', '.join(absent)}."
            )
        if not table.pitr:
            yield Finding(
                DISASTER_RECOVERY,
                (table.id,),
                f"{table.label} has no point-in-time recovery on every copy: a bad write cannot be undone.",
                "enable PointInTimeRecoverySpecification on the table (on each replica of a global table).",
                violation=True,
            )


def _bucket_findings(model: Model) -> Iterable[Finding]:
    logs = tuple(b.id for b in model.buckets if b.role == "logs")
    if logs:
        yield Finding(
            DISASTER_RECOVERY,
            logs,
            "access-log buckets are not replicated: operational records, not user data.",
        )
    for bucket in (b for b in model.buckets if b.role == "data"):
        missing = sorted(set(model.region_names) - {bucket.region} - set(bucket.replicated_to))
        if not bucket.replicated_to and model.is_local:
            yield Finding(
                DISASTER_RECOVERY,
                (bucket.id,),
                f"{bucket.label}: the local runtime copies media between regions (local emulation).",
            )
        elif not bucket.replicated_to:
            yield Finding(
                DISASTER_RECOVERY,
                (bucket.id,),
                f"{bucket.label} is not replicated to any other region: "
                f"losing {bucket.region} loses its objects.",
                f"replicate it to every other region (S3 replication; here the putBucketReplication call in "
                f"Aviary-MediaReplication-{bucket.region}, stacks/components/media_replication.py).",
                violation=True,
            )
        elif missing:
            yield Finding(
                DISASTER_RECOVERY, (bucket.id,), f"{bucket.label} is not replicated to {', '.join(missing)}."
            )
        if bucket.replicated_to and not bucket.versioned:
            yield Finding(
                DISASTER_RECOVERY,
                (bucket.id, *filter(None, (bucket.replication,))),
                f"{bucket.label} replicates but is not versioned: S3 rejects the replication configuration.",
                "turn on versioning (VersioningConfiguration Status Enabled).",
                violation=True,
            )
    replicated = [b for b in model.buckets if b.replicated_to and not b.time_control]
    if replicated:
        yield Finding(
            RELAX_CONSISTENCY,
            tuple(b.replication or b.id for b in replicated),
            "S3 replication runs without Replication Time Control: most objects copy within minutes, none "
            "is bounded; that is the RPO of media.",
        )


def _region_findings(model: Model) -> Iterable[Finding]:
    if len(model.regions) < 2:
        yield Finding(
            DISASTER_RECOVERY,
            (),
            f"the assembly deploys to {len(model.regions)} region: nothing survives its loss.",
            "deploy to at least two regions (context regions).",
            violation=True,
        )
    grouped: dict[tuple[str, str, str, tuple[str, ...]], list[ResourceId]] = {}
    for ref in model.cross_region_references:
        key = (ref.region, ref.variable, ref.target, ref.target_regions)
        grouped.setdefault(key, []).append(ref.function)
    for (region, variable, target, homes), functions in grouped.items():
        yield Finding(
            DISASTER_RECOVERY,
            tuple(functions),
            f"{variable} names {target}, which is in {', '.join(homes)}, not {region}: "
            "losing that region breaks these functions too.",
            "give each function its own region's resource (derive per-region names in aviary/naming.py).",
            violation=True,
        )
    for pool in model.user_pools:
        yield from _identity_findings(model, pool)


USER_DIRECTORY_FIX = "stacks/components/user_directory.py, composed in the primary region's data stack"


def _identity_after_loss(pool: UserPool, lost: str) -> Iterable[str]:
    active = [r for r in (pool.region, *pool.replica_regions) if r != lost]
    if lost == pool.region and active:
        yield (
            f"sign-up, password and profile changes stop ({pool.id}); sign-in and token refresh go on at "
            f"the replica in {', '.join(active)} (clients call its regional endpoint, except users with "
            "TOTP MFA); every region keeps verifying tokens from its own copy of the keys"
        )
    elif lost == pool.region:
        yield (
            f"sign-in and sign-up stop ({pool.id}: no replica); issued ID tokens keep working for up to "
            "an hour: every region verifies them from its own copy of the keys"
        )
    elif lost in pool.replica_regions:
        yield f"the user pool's replica in {lost} is lost; sign-in goes on at the primary, {pool.region}"


def _identity_findings(model: Model, pool: UserPool) -> Iterable[Finding]:
    if model.is_local:
        yield Finding(
            DISASTER_RECOVERY,
            (pool.id,),
            "local emulation: moto cannot replicate a user pool, so one pool serves every region "
            "(the local runtime writes each region's token settings).",
        )
        return
    others = [r for r in model.region_names if r != pool.region]
    if others and not pool.replica_regions:
        yield Finding(
            DISASTER_RECOVERY,
            (pool.id,),
            f"the Cognito user pool is only in {pool.region}: losing that region stops every sign-in, "
            "token refresh and sign-up (issued tokens keep working until they expire, within an hour).",
            f"replicate it into another region ({USER_DIRECTORY_FIX}).",
            violation=True,
        )
        return
    strangers = [r for r in pool.replica_regions if r not in model.region_names]
    if strangers:
        yield Finding(
            DISASTER_RECOVERY,
            (pool.id,),
            f"the user pool's replica is in {', '.join(strangers)}, where Aviary does not run.",
            f"put the replica in a deployed region ({USER_DIRECTORY_FIX}).",
            violation=True,
        )
    without = [r for r in others if r not in pool.replica_regions]
    if without:
        yield Finding(
            DISASTER_RECOVERY,
            (pool.id,),
            f"{', '.join(without)} holds no replica of the user pool (Cognito allows one per pool, in "
            f"{', '.join(pool.replica_regions)}): it verifies tokens from its own copy of the keys and its "
            f"clients sign in at {pool.region} or the replica; losing both stops sign-ins there.",
        )


LATENCY_RECORD_FIX = "stacks/components/latency_record.py, composed in each region's service stack"


def _routing_findings(model: Model) -> Iterable[Finding]:
    """Every region answers for every public name with its own latency record, and each follows a
    health check quick enough that a failed region loses its clients by itself."""
    if model.is_local:
        yield Finding(
            DISASTER_RECOVERY,
            (),
            "local emulation: the local front door stands in for Route 53 (deep health checks, the same "
            "failure threshold, region order instead of latency); the templates declare no record.",
        )
        return
    names = model.latency_names
    if not names:
        yield Finding(
            DISASTER_RECOVERY,
            (),
            "no Route 53 latency record routes any name to the regions: after a region loss, clients "
            "must switch regions themselves.",
            f"give each region a health-checked latency record for each public name ({LATENCY_RECORD_FIX}).",
            violation=True,
        )
    for name in names:
        for region in model.region_names:
            records = model.latency_records(name, region)
            if not records:
                elsewhere = tuple(r for r in model.records if r.name == name and r.latency_region)
                served = ", ".join(sorted({r.latency_region or "" for r in elsewhere}))
                yield Finding(
                    DISASTER_RECOVERY,
                    tuple(r.id for r in elsewhere),
                    f"{name} has latency records for {served} "
                    f"but none for {region}: no client is ever sent to {region} for it, and no health check "
                    "watches it.",
                    f"add a latency alias record for {name} in {region}'s own stack, following a Route 53 "
                    f"health check of that region's /health ({LATENCY_RECORD_FIX}).",
                    violation=True,
                )
            for record in records:
                yield from _record_findings(record, region)


def _record_findings(record: RoutingRecord, region: str) -> Iterable[Finding]:
    if record.region != region:
        yield Finding(
            DISASTER_RECOVERY,
            (record.id,),
            f"{record.name}'s latency record for {region} is declared in a stack of {record.region}: "
            f"a failed or deleted stack there takes {region}'s record with it.",
            f"declare each region's record in that region's own stack ({LATENCY_RECORD_FIX}).",
            violation=True,
        )
    if not record.follows_health:
        yield Finding(
            DISASTER_RECOVERY,
            (record.id,),
            f"{record.name}'s latency record for {region} follows no health check: when {region} fails, "
            f"Route 53 keeps sending it the clients nearest to it.",
            f"give the record a HealthCheckId: an HTTPS Route 53 health check of {region}'s /health, "
            f"every 10 s, failing after at most 3 failures ({LATENCY_RECORD_FIX}).",
            violation=True,
        )
    elif record.health_check and record.health_check.detection_seconds > MAX_DETECTION_SECONDS:
        check = record.health_check
        yield Finding(
            DISASTER_RECOVERY,
            (record.id, check.id),
            f"{record.name}'s health check for {region} needs {check.request_interval} s x "
            f"{check.failure_threshold} = {check.detection_seconds} s to declare the region failed, "
            f"more than the {MAX_DETECTION_SECONDS} s the README promises.",
            f"check every 10 s and fail after at most 3 failures ({LATENCY_RECORD_FIX}).",
            violation=True,
        )


def _listener_findings(model: Model) -> Iterable[Finding]:
    for listener in (x for x in model.listeners if x.serves_plain_http):
        if model.is_local:
            yield Finding(
                DISASTER_RECOVERY,
                (listener.id,),
                f"local emulation: plain HTTP on port {listener.port} (moto issues no certificates).",
            )
            continue
        what = (
            f"its rules {', '.join(str(r) for r in listener.forwarding_rules)} forward"
            if listener.redirects_to_https
            else "it forwards"
        )
        yield Finding(
            DISASTER_RECOVERY,
            (listener.id, *listener.forwarding_rules),
            f"the listener on port {listener.port} serves plain HTTP ({what} requests rather than "
            "redirecting them to HTTPS): bearer tokens and timelines cross the internet in clear text.",
            "listen with HTTPS on 443 under a TLS 1.2+ policy, and close port 80 or only redirect it to "
            "HTTPS (stacks/components/timeline_load_balancer.py).",
            violation=True,
        )


def _media_findings(model: Model) -> Iterable[Finding]:
    media = [b for b in model.buckets if b.role == "data" and b.name]
    region_of = {b.name: b.region for b in media}
    if model.is_local:
        if media:
            yield Finding(
                DISASTER_RECOVERY,
                tuple(b.id for b in media),
                "local emulation: the local runtime serves media URLs from these buckets; there is no CDN.",
            )
        return
    readers = [d for d in model.distributions if set(d.bucket_origins) & set(region_of)]
    if media and not readers:
        yield Finding(
            DISASTER_RECOVERY,
            tuple(b.id for b in media),
            "accepted media has no read path: no CloudFront distribution reads the media buckets.",
            "deploy a distribution on the media name whose origin group fails over between two regions' "
            "media buckets (stacks/components/media_distribution.py).",
            violation=True,
        )
    for distribution in readers:
        for pattern, buckets in distribution.behaviours:
            regions = sorted({region_of.get(b, UNRESOLVED) for b in buckets})
            if len(regions) < 2:
                where = f"{', '.join(buckets)} in {', '.join(regions)}" if buckets else "no media bucket"
                yield Finding(
                    DISASTER_RECOVERY,
                    (distribution.id,),
                    f"media behind path {pattern} has a single origin ({where}): losing that region "
                    "stops every media read that is not cached.",
                    "point the behaviour at an origin group whose members are media buckets in two regions, "
                    "failing over on 5xx, 403 and 404 (stacks/components/media_distribution.py).",
                    violation=True,
                )


def _unique(findings: Iterable[Finding]) -> list[Finding]:
    return list(dict.fromkeys(findings))
