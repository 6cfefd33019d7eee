"""The local front door: health that flips after consecutive checks, and failover between two fake regions."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from stacks.components import latency_record
from tools.local_runtime import front_door
from tools.local_runtime.front_door import FAILURE_THRESHOLD, RegionHealth, Routing, build_app
from tools.local_runtime.settings import load_local_settings

EAST, WEST = "us-east-1", "us-west-2"


# -- health and routing ----------------------------------------------------------------------------------


def test_a_region_turns_unhealthy_only_after_consecutive_failures_and_back_after_consecutive_successes():
    # The same threshold as prod's Route 53 health checks.
    assert FAILURE_THRESHOLD == latency_record.FAILURE_THRESHOLD == 3
    region = RegionHealth(EAST, "http://127.0.0.1:1", changed_at=0.0)

    flips = [
        region.record(ok, now) for now, ok in enumerate([False, False, True, False, False, False], start=1)
    ]

    assert flips == [False, False, False, False, False, True]  # the success in between resets the count
    assert (region.healthy, region.changed_at) == (False, 6)

    flips = [region.record(ok, now) for now, ok in enumerate([True, True, False, True, True, True], start=7)]

    assert flips == [False, False, False, False, False, True]
    assert (region.healthy, region.changed_at) == (True, 12)


def test_the_active_region_is_the_first_healthy_one_in_order():
    east, west, third = (RegionHealth(r, f"http://{r}") for r in (EAST, WEST, "eu-west-1"))
    routing = Routing([east, west, third])
    assert routing.active is east

    east.healthy = False
    assert routing.active is west

    west.healthy = False
    assert routing.active is third

    east.healthy = True
    assert routing.active is east

    east.healthy = third.healthy = False
    assert routing.active is None
    assert routing.status()["active_region"] is None
    assert [r["healthy"] for r in routing.status()["regions"]] == [False, False, False]


# -- failover over HTTP ----------------------------------------------------------------------------------


def loopback_socket(port: int = 0) -> socket.socket:
    """A socket bound to 127.0.0.1:`port` that may be bound again once closed (its port is reused)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return sock


def consecutive_sockets(count: int) -> list[socket.socket]:
    """Sockets bound to `count` consecutive free loopback ports (a region's port is the first + index)."""
    for _ in range(50):
        taken = [loopback_socket()]
        try:
            for offset in range(1, count):
                taken.append(loopback_socket(taken[0].getsockname()[1] + offset))
        except OSError:
            for each in taken:
                each.close()
            continue
        return taken
    raise AssertionError("no consecutive free ports")


class FakeRegion:
    """One region's API on its own port: /health answers 200 and any other request is echoed."""

    def __init__(self, name: str, sock: socket.socket) -> None:
        self.name = name
        self.port = sock.getsockname()[1]
        self.sock = sock
        self.runner: web.AppRunner | None = None

    async def health(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def echo(self, request: web.Request) -> web.Response:
        seen = {
            "region": self.name,
            "method": request.method,
            "path": request.path_qs,
            "host": request.host,
            "trace": request.headers.get("X-Trace-Id"),
            "body": await request.text(),
        }
        return web.json_response(
            seen, status=201 if request.method == "POST" else 200, headers={"X-Upstream": self.name}
        )

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/health", self.health)
        app.router.add_route("*", "/{path:.*}", self.echo)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.SockSite(self.runner, self.sock).start()

    async def stop(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()
        self.runner = None

    async def restart(self) -> None:
        self.sock = loopback_socket(self.port)
        await self.start()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.fixture
def fast_checks(monkeypatch):
    monkeypatch.setattr(front_door, "CHECK_INTERVAL_SECONDS", 0.02)


def test_requests_go_to_the_first_healthy_region_and_fail_over_and_back(fast_checks, tmp_path):
    sockets = consecutive_sockets(2)
    settings = load_local_settings(
        {
            "AVIARY_LOCAL_STATE_DIR": str(tmp_path),
            "AVIARY_LOCAL_FIRST_API_PORT": str(sockets[0].getsockname()[1]),
        }
    )
    assert settings.regions == (EAST, WEST)
    regions = {name: FakeRegion(name, sock) for name, sock in zip(settings.regions, sockets, strict=True)}
    assert [settings.api_port(name) for name in settings.regions] == [r.port for r in regions.values()]

    async def scenario() -> None:
        for region in regions.values():
            await region.start()
        try:
            async with TestClient(TestServer(build_app(settings))) as client:
                await run(client)
        finally:
            for region in regions.values():
                if region.runner is not None:
                    await region.stop()

    async def served_by(client: TestClient) -> tuple[int, str | None]:
        response = await client.get("/timeline")
        await response.read()
        return response.status, response.headers.get("X-Aviary-Region")

    async def status(client: TestClient) -> dict[str, Any]:
        return await (await client.get("/frontdoor/status")).json()

    async def run(client: TestClient) -> None:
        # Forwarded as sent (method, path, query, headers, body), answered with the region named.
        response = await client.post("/tweets?x=1", data="hello", headers={"X-Trace-Id": "t-1"})
        assert response.status == 201
        assert (response.headers["X-Aviary-Region"], response.headers["X-Upstream"]) == (EAST, EAST)
        assert await response.json() == {
            "region": EAST,
            "method": "POST",
            "path": "/tweets?x=1",
            "host": f"127.0.0.1:{regions[EAST].port}",
            "trace": "t-1",
            "body": "hello",
        }
        assert (await status(client))["failovers"] == []

        await regions[EAST].stop()
        seen: list[tuple[int, str | None]] = []

        async def moved_west() -> bool:
            seen.append(await served_by(client))
            return seen[-1] == (200, WEST)

        await eventually(moved_west)
        # Until the checks notice, requests reach the stopped region and fail; nothing else.
        assert set(seen[:-1]) <= {(502, EAST)}
        after_failover = await status(client)
        assert after_failover["active_region"] == WEST
        assert [(r["region"], r["healthy"]) for r in after_failover["regions"]] == [
            (EAST, False),
            (WEST, True),
        ]
        assert [(f["from"], f["to"]) for f in after_failover["failovers"]] == [(EAST, WEST)]

        await regions[EAST].restart()

        async def back_east() -> bool:
            return await served_by(client) == (200, EAST)

        await eventually(back_east)
        after_recovery = await status(client)
        assert [(f["from"], f["to"]) for f in after_recovery["failovers"]] == [(EAST, WEST), (WEST, EAST)]
        first, second = after_recovery["failovers"]
        assert first["at"] <= second["at"]

        await regions[EAST].stop()
        await regions[WEST].stop()

        async def nowhere() -> bool:
            return (await status(client))["active_region"] is None

        await eventually(nowhere)
        response = await client.get("/timeline")
        assert response.status == 503
        assert response.headers["Retry-After"] == "2"
        assert (await response.json())["message"] == "No region is healthy; retry shortly."

    asyncio.run(scenario())
