"""The timeline host's HTTP interface (aiohttp) and its entry point.

GET /timeline?limit=&cursor= with a Bearer ID token, and GET /health for the load balancer.
Every error is an AviaryError JSON body; bad input is a 4xx, never a 500.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import boto3
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from aviary import clients
from aviary.auth import TokenVerifier, jwks_key_source
from aviary.errors import AviaryError, NotFound, ServiceUnavailable
from aviary.host_settings import TimelineHostSettings
from aviary.media_urls import MediaUrls
from aviary.settings import SettingsError
from aviary.timeline import DEFAULT_LIMIT, decode_cursor, parse_limit
from aviary.timeline_store import TimelineStore
from aviary.token_settings import (
    ReloadingKeySource,
    TokenSettings,
    TokenSettingsError,
    load_token_settings,
)
from hosts.timeline_service import unreadable_requests
from hosts.timeline_service.cache import TimelineCache
from hosts.timeline_service.readiness import (
    Readiness,
    cache_usable,
    dynamodb_or_stale_pages,
    token_keys_loaded,
    volume_mounted,
)
from hosts.timeline_service.service import TimelineService

log = logging.getLogger(__name__)

SERVICE = web.AppKey("timeline_service", TimelineService)
VERIFIER = web.AppKey("token_verifier", TokenVerifier)
READINESS = web.AppKey("readiness", Readiness)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# What answers the paths the host does not serve, where not a 404: the local runtime serves the
# write API on the host's port (tools/local_runtime/region.py).
OTHER_PATHS = web.AppKey("other_paths", Handler)

_dumps = partial(json.dumps, separators=(",", ":"))
HEALTHY_BODY = _dumps({"status": "ok"})


# A page goes out as held: its bytes and these headers, nothing computed per request. A CIMultiDict
# because aiohttp copies one into each response fastest.
PAGE_HEADERS = CIMultiDict(
    {"Content-Type": "application/json; charset=utf-8", "Cache-Control": "private, no-store"}
)


def error_response(error: AviaryError) -> web.Response:
    headers = {"Cache-Control": "no-store"}
    if isinstance(error, ServiceUnavailable):
        headers["Retry-After"] = str(error.retry_after_seconds)
    return web.json_response(error.to_body(), status=error.http_status, headers=headers, dumps=_dumps)


def internal_error_response() -> web.Response:
    body = {"error": {"code": "internal_error", "message": "An unexpected error occurred.", "field": None}}
    return web.json_response(body, status=500, dumps=_dumps)


# Clients page with the cursors of pages the host served, so the same few query strings come back
# again and again: remember what each parsed to (parsing the query, base64 and a pattern check cost
# more than the rest of a hit). A query string that does not parse raises, and is not remembered.
@lru_cache(maxsize=4096)
def paging_from_query(query_string: str) -> tuple[int, str | None]:
    """(limit, decoded cursor) from a request's raw query string, as aiohttp's request.query reads it."""
    query = URL.build(query_string=query_string, encoded=True).query
    return parse_limit(query.get("limit")), decode_cursor(query.get("cursor"))


class TimelineRoute:
    """GET /timeline?limit=&cursor=. It holds its service and verifier, so a request looks up neither."""

    def __init__(self, service: TimelineService, verifier: TokenVerifier) -> None:
        self.service = service
        self.verifier = verifier

    async def get(self, request: web.Request) -> web.Response:
        # Errors are answered here, not by a middleware: an aiohttp app with middlewares runs two more
        # coroutine layers on every request, a cost make bench-host showed on the cached path.
        try:
            caller = self.verifier.caller_from_authorization(request.headers.get("Authorization"))
            query_string = request.rel_url.raw_query_string
            if query_string:
                limit, cursor = paging_from_query(query_string)
            else:
                limit, cursor = DEFAULT_LIMIT, None
            result = self.service.fresh_in_memory(caller.user_id, limit, cursor)
            if result is None:
                result = await self.service.timeline(caller.user_id, limit, cursor)
        except AviaryError as error:
            return error_response(error)
        except Exception:
            log.exception("Unexpected failure serving %s %s", request.method, request.path)
            return internal_error_response()
        if not result.stale:
            return web.Response(body=result.body, headers=PAGE_HEADERS)
        headers = CIMultiDict(PAGE_HEADERS)
        headers["X-Aviary-Stale"] = "true"
        headers["Age"] = str(int(result.age_seconds))
        return web.Response(body=result.body, headers=headers)


class HealthRoute:
    """GET /health: 200 when this host is ready to serve (readiness.py), else 503 saying why."""

    def __init__(self, readiness: Readiness) -> None:
        self.readiness = readiness

    async def get(self, _request: web.Request) -> web.Response:
        problems = await self.readiness.problems()
        if problems:
            log.warning("Not ready: %s", problems)
            reasons = "; ".join(problems.values())
            return error_response(ServiceUnavailable(f"This host is not ready to serve: {reasons}."))
        return web.Response(text=HEALTHY_BODY, content_type="application/json")


async def method_not_allowed(_request: web.Request) -> web.Response:
    body = {"error": {"code": "method_not_allowed", "message": "Method Not Allowed.", "field": None}}
    return web.json_response(body, status=405, headers={"Allow": "GET"}, dumps=_dumps)


async def other_path(request: web.Request) -> web.StreamResponse:
    """Any path the host does not serve: a 404, unless the app holds a handler for them in OTHER_PATHS."""
    handler = request.app.get(OTHER_PATHS)
    if handler is not None:
        return await handler(request)
    return error_response(
        NotFound(f"There is no resource at {request.path!r}; use GET /timeline or GET /health.")
    )


def make_app(
    service: TimelineService, verifier: TokenVerifier, readiness: Readiness | None = None
) -> web.Application:
    """The host's routes; every answer, error or not, is JSON (unreadable requests: unreadable_requests).

    Without `readiness`, /health answers 200 as long as the process serves (tests, the benchmark)."""
    unreadable_requests.install()
    app = web.Application()
    app[SERVICE] = service
    app[VERIFIER] = verifier
    app[READINESS] = Readiness() if readiness is None else readiness
    app.router.add_get("/timeline", TimelineRoute(service, verifier).get, allow_head=False)
    app.router.add_get("/health", HealthRoute(app[READINESS]).get, allow_head=False)
    # After the GET routes: any other method on those paths, then any other path.
    for path in ("/timeline", "/health"):
        app.router.add_route("*", path, method_not_allowed)
    app.router.add_route("*", "/{path:.*}", other_path)

    async def close_service(app: web.Application) -> None:
        app[SERVICE].close()

    app.on_cleanup.append(close_service)
    return app


def timeline_store(dynamodb: Any, settings: TimelineHostSettings) -> TimelineStore:
    """The DynamoDB reads behind a host's pages, as `settings` name them."""
    return TimelineStore(
        dynamodb,
        settings.timelines_table,
        settings.social_graph_table,
        settings.tweets_table,
        settings.counts_table,
        settings.celebrity_follower_threshold,
        urls=MediaUrls(settings.media_base_url),
    )


def build_app(settings: TimelineHostSettings) -> web.Application:
    # AWS_ENDPOINT_URL (the local moto server) is read by boto3 itself.
    dynamodb = clients.client("dynamodb", region=settings.region)
    store = timeline_store(dynamodb, settings)
    cache = TimelineCache(settings.cache_path)
    verifier, keys_loaded = build_verifier(settings)
    checks = {
        "cache": cache_usable(cache),
        "token_settings": token_keys_loaded(keys_loaded),
        "dynamodb": dynamodb_or_stale_pages(
            # Its own client: one attempt with short timeouts, where reads have the shared retries.
            boto3.client("dynamodb", region_name=settings.region, config=clients.PROBE_CONFIG),
            settings.timelines_table,
            cache,
            ThreadPoolExecutor(max_workers=2, thread_name_prefix="readiness-probe"),
        ),
    }
    if settings.cache_mount:
        checks = {"cache_volume": volume_mounted(settings.cache_mount), **checks}
    return make_app(TimelineService(store, cache), verifier, Readiness(checks))


def build_verifier(settings: TimelineHostSettings) -> tuple[TokenVerifier, Callable[[], bool]]:
    """The token verifier, and whether its signing keys are loaded (for readiness)."""
    if settings.token_settings_parameter:
        ssm = clients.client("ssm", region=settings.region)  # this region's copy, never another's

        saved_copy = Path(settings.cache_path).parent / "token-settings.json"

        def read() -> TokenSettings:
            return load_token_settings(ssm, settings.token_settings_parameter, saved_copy)

        token_settings = read()  # before serving, or the host does not start (main)
        verifier = TokenVerifier(token_settings.issuer, token_settings.audience, lambda _kid: None)

        def follow(reloaded: TokenSettings) -> None:
            # The pool's issuer or app client can change with a deploy; hosts follow without a restart.
            verifier.issuer, verifier.audience = reloaded.issuer, reloaded.audience

        verifier.key_source = ReloadingKeySource(token_settings, read, on_reload=follow)
        return verifier, lambda: True
    key_source = jwks_key_source(settings.jwks_url)
    try:
        key_source.refresh()  # before serving, so the first callers are not asked to retry
    except Exception as error:
        log.warning("Token signing keys not fetched at start (%s); will retry on demand", error)
    return TokenVerifier(settings.jwt_issuer, settings.jwt_audience, key_source), lambda: key_source.loaded


def main(environ: Mapping[str, Any] | None = None) -> None:
    """Read the settings once, then serve until stopped."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = TimelineHostSettings.from_environment(os.environ if environ is None else environ)
        app = build_app(settings)
    except (SettingsError, TokenSettingsError) as error:
        raise SystemExit(str(error)) from None
    # No access log: the load balancer keeps one, and writing it here would cost every request.
    # reuse_port: a host runs one such worker per vCPU on the same port (hosts/systemd), and the
    # kernel spreads the load balancer's connections between them.
    web.run_app(app, host=settings.listen_host, port=settings.port, access_log=None, reuse_port=True)
