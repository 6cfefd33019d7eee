"""The local front door on 127.0.0.1:8080, standing in for Route 53 failover with health checks.

    python -m tools.local_runtime.front_door

Every request goes to the first configured region whose health check passes: prod's latency-based
records, with the nearest region replaced by the first in the configured order. A region's check is
GET /health, the region's deep health (its timeline host ready and its source tables answering, as
prod's two health routes say), every second instead of prod's 10 s; it fails after prod's failure
threshold of failures in a row and recovers after as many successes, as a Route 53 health check
does. GET /frontdoor/status says which region serves and when the last failover happened. Nothing
is retried here: DNS failover does not replay requests either, so a client retries (with its
Idempotency-Key) and reaches the new region.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from hosts.timeline_service import unreadable_requests
from stacks.components.latency_record import FAILURE_THRESHOLD
from tools.local_runtime import media_delivery
from tools.local_runtime.settings import LocalSettings, load_local_settings

log = logging.getLogger("aviary.local.front_door")

CHECK_INTERVAL_SECONDS = 1.0
# The region's deep health reads its tables with a one-second deadline (Route 53 waits two seconds).
CHECK_TIMEOUT_SECONDS = 2.0
# Headers that describe one hop, not the message (RFC 9110 section 7.6.1), and what aiohttp sets itself.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host",
     "content-length"}
)  # fmt: skip


@dataclass
class RegionHealth:
    region: str
    url: str
    healthy: bool = True  # assumed until checked, as a new Route 53 record is
    failures: int = 0
    successes: int = 0
    changed_at: float = field(default_factory=time.time)

    def record(self, ok: bool, now: float) -> bool:
        """Counts one check; True when the region's state flipped."""
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            flip = not self.healthy and self.successes >= FAILURE_THRESHOLD
        else:
            self.failures, self.successes = self.failures + 1, 0
            flip = self.healthy and self.failures >= FAILURE_THRESHOLD
        if flip:
            self.healthy = not self.healthy
            self.changed_at = now
        return flip


@dataclass
class Routing:
    regions: list[RegionHealth]
    failovers: list[dict[str, object]] = field(default_factory=list)

    @property
    def active(self) -> RegionHealth | None:
        return next((r for r in self.regions if r.healthy), None)

    def status(self) -> dict[str, object]:
        active = self.active
        return {
            "active_region": active.region if active else None,
            "regions": [
                {"region": r.region, "healthy": r.healthy, "since": r.changed_at} for r in self.regions
            ],
            "failovers": self.failovers,
        }


def routing_for(settings: LocalSettings) -> Routing:
    return Routing([RegionHealth(region, settings.api_url(region)) for region in settings.regions])


async def check_forever(routing: Routing, session: aiohttp.ClientSession) -> None:
    timeout = aiohttp.ClientTimeout(total=CHECK_TIMEOUT_SECONDS)
    while True:
        before = routing.active
        for region in routing.regions:
            try:
                async with session.get(f"{region.url}/health", timeout=timeout) as response:
                    ok = response.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            if region.record(ok, time.time()):
                log.warning("%s is now %s", region.region, "healthy" if region.healthy else "unhealthy")
        after = routing.active
        if after is not before:
            routing.failovers.append(
                {
                    "at": time.time(),
                    "from": before.region if before else None,
                    "to": after.region if after else None,
                }
            )
        await asyncio.sleep(CHECK_INTERVAL_SECONDS)


def build_app(settings: LocalSettings) -> web.Application:
    unreadable_requests.install()
    routing = routing_for(settings)
    app = web.Application(client_max_size=12 * 1024 * 1024)
    http: dict[str, aiohttp.ClientSession] = {}  # the one client session, made on startup

    async def status(_request: web.Request) -> web.Response:
        return web.json_response(routing.status())

    async def forward(request: web.Request) -> web.StreamResponse:
        target = routing.active
        if target is None:
            return web.json_response(
                {"message": "No region is healthy; retry shortly."}, status=503, headers={"Retry-After": "2"}
            )
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        body = await request.read()
        try:
            async with http["session"].request(
                request.method,
                f"{target.url}{request.rel_url}",
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=30),
            ) as upstream:
                payload = await upstream.read()
                reply_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
                reply_headers["X-Aviary-Region"] = target.region
                return web.Response(status=upstream.status, body=payload, headers=reply_headers)
        except (aiohttp.ClientError, TimeoutError):
            return web.json_response(
                {"message": f"{target.region} did not answer; retry shortly."},
                status=502,
                headers={"Retry-After": "1", "X-Aviary-Region": target.region},
            )

    async def checks(_app: web.Application):
        http["session"] = aiohttp.ClientSession()
        task = asyncio.create_task(check_forever(routing, http["session"]))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await http["session"].close()

    app.cleanup_ctx.append(checks)
    app.router.add_get("/frontdoor/status", status)
    media_delivery.add_routes(
        app, settings.config.account, lambda: [r.region for r in routing.regions if r.healthy]
    )
    app.router.add_route("*", "/{path:.*}", forward)
    return app


def main() -> None:
    logging.getLogger("botocore").setLevel(logging.WARNING)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s front-door %(levelname)s %(message)s")
    settings = load_local_settings()
    web.run_app(
        build_app(settings), host=settings.host, port=settings.front_door_port, access_log=None, print=None
    )


if __name__ == "__main__":
    main()
