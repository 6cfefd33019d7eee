"""A mixed load through the front door with a region failure in the middle, then the invariants.

Sets up its own accounts and follow graph on a running local stage, starts the load driver (locust,
in a child process), takes a region down and brings it back on schedule, samples every process's CPU
(so the figures show whether the driver or the system was the bottleneck), settles, and checks.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.load import invariants
from tools.local_runtime import identity
from tools.local_runtime.control import LocalStage
from tools.local_runtime.deployment import read_deployment
from tools.local_runtime.settings import PROJECT
from tools.local_runtime.stage_http import RETRY_DELAY_SECONDS, request

FOLLOWS_PER_USER = 5
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SAMPLE_SECONDS = 0.5


@dataclass(frozen=True)
class LoadPlan:
    users: int = 20
    duration_seconds: float = 120.0
    # The region failure, in seconds from the start of the load; None for a run without one.
    outage: tuple[float, float] | None = (40.0, 80.0)
    seed: int = 1


@dataclass
class LoadReport:
    plan: LoadPlan
    region: str  # the region taken down
    driver: dict[str, Any]  # what the driver measured (routes, statuses, failures, accepted writes)
    outage_at: tuple[float, float] | None  # epoch seconds of region-down and region-up
    cpu: dict[str, float]  # process name -> share of one core over the load
    settle_seconds: float
    findings: invariants.Findings
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.findings.broken


def handles(run: str, users: int) -> list[str]:
    return [f"ld{run}_{n:02d}" for n in range(users)]


def follow_graph(users: list[str]) -> dict[str, list[str]]:
    """Each user follows the next few users round the ring, so every post reaches several timelines."""
    count = min(FOLLOWS_PER_USER, len(users) - 1)
    return {user: [users[(i + k) % len(users)] for k in range(1, count + 1)] for i, user in enumerate(users)}


def _until_ok(url: str, method: str, token: str) -> None:
    for _ in range(120):
        status, body, _ = request(url, method, headers={"Authorization": f"Bearer {token}"})
        if status == 200:
            return
        if status is not None and status < 500:
            raise RuntimeError(f"{method} {url} was refused: {status} {body}")
        time.sleep(RETRY_DELAY_SECONDS)
    raise RuntimeError(f"{method} {url} did not succeed")


def cpu_ticks(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])  # utime + stime


class CpuMeter:
    """CPU time per named process over an interval, following a name across restarts (new pids)."""

    def __init__(self) -> None:
        self.first: dict[tuple[str, int], int] = {}
        self.last: dict[tuple[str, int], int] = {}

    def sample(self, pids: dict[str, int]) -> None:
        for name, pid in pids.items():
            ticks = cpu_ticks(pid)
            if ticks is not None:
                self.first.setdefault((name, pid), ticks)
                self.last[(name, pid)] = ticks

    def shares(self, seconds: float) -> dict[str, float]:
        used: Counter[str] = Counter()
        for key, ticks in self.last.items():
            used[key[0]] += ticks - self.first[key]
        return {name: used[name] / CLOCK_TICKS / seconds for name in sorted(used)}


def _by_user_id(follows: dict[str, list[str]], tokens: dict[str, str]) -> dict[str, list[str]]:
    """The follow graph by user ID (what the tables hold) instead of by handle."""
    ids = {user: identity.caller_of(token).user_id for user, token in tokens.items()}
    return {ids[user]: [ids[followee] for followee in followees] for user, followees in follows.items()}


def stage_pids(stage: LocalStage) -> dict[str, int]:
    pids = {}
    for path in sorted(stage.processes.pid_dir.glob("*.pid")):
        pid = stage.processes.pid(path.stem)
        if pid is not None:
            pids[path.stem] = pid
    return pids


def run(stage: LocalStage, plan: LoadPlan, say=print) -> LoadReport:
    """Accounts and follows, then the load with its outage, then settling and the invariants."""
    settings = stage.settings
    run_id = f"{int(time.time()) % 10**6:06d}"
    users = handles(run_id, plan.users)
    say(f"Signing in {len(users)} users and following ...")
    tokens = {user: stage.token(user) for user in users}
    follows = follow_graph(users)
    for user, followees in follows.items():
        for followee in followees:
            _until_ok(f"{settings.front_door_url}/users/{followee}/follow", "POST", tokens[user])
    stage.settle(timeout_seconds=120)

    with tempfile.TemporaryDirectory(prefix="aviary-load-") as scratch:
        return _load(stage, plan, Path(scratch), run_id, tokens, follows, say)


def _load(
    stage: LocalStage,
    plan: LoadPlan,
    work: Path,
    run_id: str,
    tokens: dict[str, str],
    follows: dict[str, list[str]],
    say,
) -> LoadReport:
    settings = stage.settings
    region = settings.primary_region
    users = list(tokens)
    plan_file, result_file = work / "plan.json", work / "result.json"
    plan_file.write_text(
        json.dumps(
            {
                "base_url": settings.front_door_url,
                "accounts": tokens,
                "duration_seconds": plan.duration_seconds,
                "seed": plan.seed,
                "run": run_id,
            }
        )
    )
    outage_text = (
        f", {region} down from {plan.outage[0]:.0f} s to {plan.outage[1]:.0f} s" if plan.outage else ""
    )
    say(f"Load: {plan.users} users for {plan.duration_seconds:.0f} s through the front door{outage_text} ...")
    driver = subprocess.Popen(
        [sys.executable, "-m", "tools.load.driver", str(plan_file), str(result_file)],
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        text=True,
    )
    meter = CpuMeter()
    outage_at: list[float] = []
    first_line = driver.stdout.readline() if driver.stdout else ""
    if not first_line.startswith("started "):
        driver.wait()
        raise RuntimeError(f"the load driver did not start (exit {driver.returncode})")
    started = float(first_line.split()[1])
    measured_until = started
    while driver.poll() is None:
        now = time.time()
        if plan.outage and not outage_at and now >= started + plan.outage[0]:
            outage_at.append(now)
            stage.region_down(region)
        elif plan.outage and len(outage_at) == 1 and now >= started + plan.outage[1]:
            outage_at.append(now)
            stage.region_up(region)
        if now <= started + plan.duration_seconds:
            meter.sample({**stage_pids(stage), "load driver": driver.pid})
            measured_until = now
        time.sleep(SAMPLE_SECONDS)
    if driver.returncode != 0:
        raise RuntimeError(f"the load driver failed (exit {driver.returncode})")
    if len(outage_at) == 1:  # the run ended before the region was due back
        outage_at.append(time.time())
        stage.region_up(region)
    result = json.loads(result_file.read_text())

    say("Settling ...")
    settled = stage.settle(timeout_seconds=600)
    timelines = {
        r: read_deployment(r, stage.client("lambda", r)).timeline_settings().timelines_table
        for r in settings.regions
    }
    internal_errors = sum(n for route, status, n in result["statuses"] if status == 500)
    findings = invariants.check(
        stage,
        accepted_posts=result["accepted_posts"],
        follows=_by_user_id(follows, tokens),
        token=tokens[users[0]],
        timelines_tables=timelines,
        internal_errors=internal_errors,
    )
    repairs = stage.replication_status() or {}
    if repairs.get("timelines_repaired"):
        calls = repairs["repair_calls_per_timeline"]
        repaired = repairs["timelines_repaired"]
        findings.figures["timelines repaired after the outage (per user and region)"] = repaired
        findings.figures["DynamoDB calls per repaired timeline, median"] = round(calls["median"])
        findings.figures["DynamoDB calls per repaired timeline, max"] = calls["max"]
    return LoadReport(
        plan=plan,
        region=region,
        driver=result,
        outage_at=(outage_at[0], outage_at[1]) if outage_at else None,
        cpu=meter.shares(max(0.001, measured_until - started)),
        settle_seconds=settled,
        findings=findings,
    )


def failure_windows(report: LoadReport) -> list[str]:
    """When requests failed (5xx or no answer) around the outage and its end, and how."""
    failures = report.driver["failures"]
    if report.outage_at is None:
        return [_window("during the run", failures, report.driver["started"])] if failures else []
    down, up = report.outage_at
    lines = []
    for label, start, end in (
        (f"{report.region} down at {down - report.driver['started']:.1f} s", down, up),
        (f"{report.region} back at {up - report.driver['started']:.1f} s", up, float("inf")),
    ):
        window = [f for f in failures if start <= f[0] < end]
        lines.append(_window(label, window, start))
    before = [f for f in failures if f[0] < down]
    if before:
        lines.append(_window("before the outage", before, report.driver["started"]))
    return lines


def _window(label: str, failures: list[list[Any]], origin: float) -> str:
    if not failures:
        return f"{label}: no failed requests"
    statuses = Counter(status or "no answer" for _, _, status in failures)
    first, last = failures[0][0] - origin, failures[-1][0] - origin
    by_status = ", ".join(f"{status} x{n}" for status, n in sorted(statuses.items(), key=str))
    return (
        f"{label}: {len(failures)} failed requests from +{first:.1f} s to +{last:.1f} s "
        f"({last - first:.1f} s): {by_status}"
    )


def render(report: LoadReport) -> str:
    plan, driver = report.plan, report.driver
    outage = (
        f"; {report.region} down from {plan.outage[0]:.0f} s to {plan.outage[1]:.0f} s" if plan.outage else ""
    )
    lines = [f"Mixed load: {plan.users} users, {driver['seconds']:.1f} s, through the front door{outage}", ""]
    statuses: dict[str, Counter[str]] = defaultdict(Counter)
    for route, status, n in driver["statuses"]:
        statuses[route][str(status or "no answer")] += n
    header = ("route", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "answers by status")
    rows = [
        (
            route,
            str(f["requests"]),
            f"{f['requests_per_second']:.1f}",
            f"{f['p50_ms']:.0f}",
            f"{f['p95_ms']:.0f}",
            f"{f['p99_ms']:.0f}",
            ", ".join(f"{s} x{n}" for s, n in sorted(statuses[route].items())),
        )
        for route, f in driver["routes"].items()
    ]
    total = sum(f["requests"] for f in driver["routes"].values())
    rows.append(("all", str(total), f"{total / driver['seconds']:.1f}", "", "", "", ""))
    lines += _table(header, rows)
    lines += ["", *failure_windows(report)]
    accepted = driver["accepted_posts"]
    lines.append(
        f"Accepted: {len(accepted)} posts, {len(driver['accepted_likes'])} likes; "
        f"{len(driver['given_up'])} posts given up after retrying for a minute."
    )
    lines.append(f"Settled {report.settle_seconds:.1f} s after the load.")
    busiest = max(report.cpu.values(), default=0.0)
    cpu = ", ".join(f"{name} {share:.0%}" for name, share in sorted(report.cpu.items(), key=lambda x: -x[1]))
    lines.append(f"CPU during the load (share of one core): {cpu}.")
    driver_share = report.cpu.get("load driver", 0.0)
    lines.append(
        "The load driver was not the bottleneck: it used "
        f"{driver_share:.0%} of a core, the busiest process {busiest:.0%}."
        if driver_share < busiest
        else f"The load driver used {driver_share:.0%} of a core, the most of any: it may be the bottleneck."
    )
    for name, figure in report.findings.figures.items():
        lines.append(f"{name.capitalize()}: {figure}.")
    lines += ["", "Invariants, after settling (goal 0 each):"]
    for name, count in report.findings.counts.items():
        lines.append(f"  {count:>6}  {name}")
        for example in report.findings.examples.get(name, []):
            lines.append(f"            e.g. {example}")
    lines.append("")
    lines.append("Result: " + ("PASS" if report.passed else "FAIL: " + "; ".join(report.findings.broken)))
    return "\n".join(lines)


def summary(report: LoadReport) -> dict[str, Any]:
    """The figures as JSON (for tests and for the README's table)."""
    latencies = [f["p50_ms"] for f in report.driver["routes"].values()]
    return {
        "passed": report.passed,
        "invariants": report.findings.counts,
        "figures": report.findings.figures,
        "examples": dict(report.findings.examples),
        "routes": report.driver["routes"],
        "statuses": report.driver["statuses"],
        "accepted_posts": len(report.driver["accepted_posts"]),
        "accepted_likes": len(report.driver["accepted_likes"]),
        "given_up": len(report.driver["given_up"]),
        "failure_windows": failure_windows(report),
        "cpu": report.cpu,
        "settle_seconds": report.settle_seconds,
        "median_p50_ms": statistics.median(latencies) if latencies else None,
    }


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines
