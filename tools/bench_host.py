"""Loopback benchmark of the timeline host's fresh-cache path against a constant-body aiohttp ceiling.

Each server runs in its own subprocess on 127.0.0.1 (an ephemeral port); this process drives a
fixed number of requests at each, round by round, and prints medians and the ratio between them.

    python -m tools.bench_host [--rounds 3] [--requests 5000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
BENCH_USER = "bench_user"  # the username the token carries
BENCH_USER_ID = "bench-user-id"  # its sub: what the host keys timelines on
PAGE_SIZE = 20
STARTUP_SECONDS = 30
ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Bench"
AUDIENCE = "aviary-bench"
KEY_ID = "bench-key"


def sample_page() -> dict[str, Any]:
    """A realistic first page: twenty tweets with every field a timeline item has."""
    items = [
        {
            "id": f"01JD{n:022d}",
            "author": f"author{n % 7}",
            "created_at": f"2026-11-21T19:{n:02d}:14.123Z",
            "text": f"Tweet number {n}: " + "lorem ipsum dolor sit amet " * 4,
            "reply_to": None,
            "retweet_of": None,
            "media_ids": [f"media-{n}"] if n % 3 == 0 else [],
            "original": None,
        }
        for n in range(PAGE_SIZE, 0, -1)
    ]
    from aviary.keys import timeline_entry_key
    from aviary.timeline import encode_cursor

    last = items[-1]
    return {"items": items, "next_cursor": encode_cursor(timeline_entry_key(last["created_at"], last["id"]))}


# -- the servers (child processes) ------------------------------------------------------------------


class _NoDynamoDB:
    """The benchmark measures the fresh-cache path: a store read would mean the cache was missed."""

    def read_page(self, handle: str, limit: int, cursor: str | None) -> Any:
        raise RuntimeError("the benchmark's cache was missed; DynamoDB is not available here")


def _signed_token() -> tuple[str, Any]:
    """A Cognito-shaped ID token for the bench user, and the public key that verifies it."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": BENCH_USER_ID, "cognito:username": BENCH_USER}
    claims |= {"token_use": "id", "iat": now, "exp": now + 24 * 3600}
    token = jwt.encode(claims, private_key, algorithm="RS256", headers={"kid": KEY_ID})
    return token, private_key.public_key()


def _timeline_app(workdir: Path) -> tuple[Any, str]:
    from aviary.auth import TokenVerifier
    from hosts.timeline_service.app import make_app
    from hosts.timeline_service.cache import TimelineCache
    from hosts.timeline_service.service import TimelineService

    cache = TimelineCache(workdir / "cache.sqlite")
    cache.put(BENCH_USER_ID, None, PAGE_SIZE, sample_page(), fetched_at=time.time())
    # Fresh for the whole run: every request takes the hit path (token check, SQLite read, JSON).
    service = TimelineService(_NoDynamoDB(), cache, fresh_seconds=24 * 3600)
    token, public_key = _signed_token()
    keys = {KEY_ID: public_key}
    # Every request is verified in full (RS256 signature, issuer, audience, expiry): no token cache.
    verifier = TokenVerifier(ISSUER, AUDIENCE, keys.__getitem__)
    return make_app(service, verifier), token


def _ceiling_app() -> tuple[Any, str]:
    from aiohttp import web

    body = json.dumps(sample_page(), separators=(",", ":")).encode()

    async def constant(_request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/timeline", constant)
    return app, ""


async def _serve(kind: str) -> None:
    from aiohttp import web

    with tempfile.TemporaryDirectory(prefix="aviary-bench-") as workdir:
        app, token = _timeline_app(Path(workdir)) if kind == "timeline" else _ceiling_app()
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, 0))
        await web.SockSite(runner, listener).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        # The parent reads this one line to learn where and how to send requests.
        print(json.dumps({"port": listener.getsockname()[1], "token": token}), flush=True)
        await stop.wait()
        await runner.cleanup()


# -- the load (parent process) -----------------------------------------------------------------------


@dataclass
class Server:
    name: str
    process: subprocess.Popen[str]
    url: str
    headers: dict[str, str]


def start_server(kind: str) -> Server:
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.bench_host", "--serve", kind],
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        text=True,
    )
    ready, _, _ = select.select([process.stdout], [], [], STARTUP_SECONDS)
    line = process.stdout.readline() if ready else ""
    if not line:
        stop_server(process)
        raise SystemExit(f"The {kind} server did not start within {STARTUP_SECONDS} s.")
    announced = json.loads(line)
    headers = {"Authorization": f"Bearer {announced['token']}"} if announced["token"] else {}
    return Server(kind, process, f"http://{HOST}:{announced['port']}/timeline", headers)


def stop_server(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True)
class Round:
    requests_per_second: float
    p50_ms: float
    p99_ms: float


async def run_round(server: Server, requests: int, concurrency: int) -> Round:
    """Exactly `requests` GETs from `concurrency` workers over kept-alive connections."""
    import aiohttp

    latencies: list[float] = []
    failures: list[str] = []
    remaining = requests

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            async with session.get(server.url, headers=server.headers) as response:
                await response.read()
                if response.status != 200 or "X-Aviary-Stale" in response.headers:
                    failures.append(f"{response.status} {response.headers.get('X-Aviary-Stale', '')}")
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        began = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    if failures:
        raise SystemExit(f"{server.name}: {len(failures)} of {requests} requests failed, e.g. {failures[0]}")
    latencies.sort()
    return Round(
        requests_per_second=requests / elapsed,
        p50_ms=1000 * latencies[len(latencies) // 2],
        p99_ms=1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    )


def median_round(rounds: list[Round]) -> Round:
    return Round(
        requests_per_second=statistics.median(r.requests_per_second for r in rounds),
        p50_ms=statistics.median(r.p50_ms for r in rounds),
        p99_ms=statistics.median(r.p99_ms for r in rounds),
    )


def benchmark(rounds: int, requests: int, concurrency: int, warmup: int) -> None:
    servers = []
    try:
        servers = [start_server("ceiling"), start_server("timeline")]
        results: dict[str, list[Round]] = {server.name: [] for server in servers}
        for server in servers:
            asyncio.run(run_round(server, warmup, concurrency))
        # Rounds alternate between the servers, so drift on the machine affects both alike.
        for number in range(1, rounds + 1):
            for server in servers:
                result = asyncio.run(run_round(server, requests, concurrency))
                results[server.name].append(result)
                print(
                    f"round {number} {server.name:8} {result.requests_per_second:8.0f} req/s  "
                    f"p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms",
                    flush=True,
                )
    finally:
        for server in servers:
            stop_server(server.process)

    ceiling, timeline = median_round(results["ceiling"]), median_round(results["timeline"])
    print(f"\nmedian of {rounds} rounds x {requests} requests at concurrency {concurrency}, loopback:")
    for name, result in (("ceiling", ceiling), ("timeline", timeline)):
        print(
            f"  {name:8} {result.requests_per_second:8.0f} req/s  "
            f"p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms"
        )
    print(
        f"  ratio timeline/ceiling: {timeline.requests_per_second / ceiling.requests_per_second:.2f} "
        f"of the throughput, p50 x{timeline.p50_ms / ceiling.p50_ms:.2f}, "
        f"p99 x{timeline.p99_ms / ceiling.p99_ms:.2f}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=5000, help="requests per round and server")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=1000, help="requests per server before the rounds")
    parser.add_argument("--serve", choices=("timeline", "ceiling"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(_serve(args.serve))
        return
    if min(args.rounds, args.requests, args.concurrency) < 1 or args.warmup < 0:
        parser.error("--rounds, --requests and --concurrency must be at least 1, --warmup at least 0")
    benchmark(args.rounds, args.requests, args.concurrency, args.warmup)


if __name__ == "__main__":
    main()
