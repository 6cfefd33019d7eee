"""One region of the local runtime, in one process: its API, its timeline host and its event sources.

    python -m tools.local_runtime.region us-east-1

Serves on 127.0.0.1:<api port>: the write API routes (lambda_functions/api handlers behind the
JWT check), and GET /timeline and GET /health from the timeline host's own app; /health also asks
what the API's health route asks, so it is the region's deep health for the front door. Threads deliver
events as the region's event source mappings would: the tweets stream to the fan-out handler, the
social graph's stream to the counts, and the media uploads queue to the media processor. Stopping
the process takes the whole region down (make region-down); its stream positions are kept, so it
resumes where it was.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from aiohttp import web

from aviary import clients, naming
from aviary.api_settings import ApiHealthSettings
from aviary.host_settings import TimelineHostSettings
from aviary.media_urls import MEDIA_BASE_URL_VARIABLE
from aviary.timeline_settings import TimelineSettings
from hosts.timeline_service import app as timeline_host
from hosts.timeline_service.readiness import Check, tables_answer
from lambda_functions.api import health as health_route
from lambda_functions.api.routes import ROUTES
from tools.local_aws.event_sources import (
    Checkpoints,
    LambdaContext,
    QueuePoller,
    StreamDelivery,
    StreamPoller,
    failure_message,
    run_forever,
    shard_of,
)
from tools.local_runtime import api_gateway
from tools.local_runtime.deployment import STREAM_CONSUMERS, RegionDeployment, read_deployment
from tools.local_runtime.dynamodb_local import stream_arn_of
from tools.local_runtime.settings import LocalSettings, load_local_settings

log = logging.getLogger("aviary.local.region")

MEDIA_HANDLER = "lambda_functions.media_processor.handler.handler"
IDLE_POLL_SECONDS = 0.2


def api_handler_path(group: str) -> str:
    return f"lambda_functions.api.{group}.handler"


def function_environment(settings: LocalSettings, deployed: dict[str, str]) -> dict[str, str]:
    """The variables the region's functions share, as deployed, but media URLs on the front door: the
    deployed media name has no CloudFront behind it locally, and the front door serves media instead."""
    return {**deployed, MEDIA_BASE_URL_VARIABLE: settings.media_base_url}


def timeline_host_settings(
    settings: LocalSettings, region: str, shared: dict[str, str]
) -> TimelineHostSettings:
    """What a host's /etc/aviary/timeline.env would say: the tables and threshold the region's timeline
    writers were deployed with, the cache under .local/, and this machine's address and port."""
    writers = TimelineSettings.from_environment(shared)
    return TimelineHostSettings(
        region=region,
        timelines_table=writers.timelines_table,
        social_graph_table=writers.social_graph_table,
        tweets_table=writers.tweets_table,
        counts_table=writers.counts_table,
        celebrity_follower_threshold=writers.celebrity_threshold,
        cache_path=str(settings.state_dir / region / "timeline-cache" / "cache.sqlite"),
        token_settings_parameter=naming.TOKEN_SETTINGS_PARAMETER,
        media_base_url=shared[MEDIA_BASE_URL_VARIABLE],
        host=settings.host,
        port=settings.api_port(region),
    )


def build_api(deployment: RegionDeployment, verifier: Any, account: str) -> api_gateway.LocalHttpApi:
    routes = []
    for key, group in ROUTES.items():
        function = deployment.function(api_handler_path(group))
        routes.append(
            api_gateway.route(
                key,
                function.load_handler(),
                LambdaContext.for_function(function.configuration),
                float(function.configuration.get("Timeout") or 3),
            )
        )
    return api_gateway.LocalHttpApi(routes, verifier, region=deployment.region, account=account)


def stream_source(
    deployment: RegionDeployment, name: str, handler_path: str, checkpoints: Checkpoints
) -> Callable[[], int]:
    """A table's stream -> its consumer's handler, with the mapping's own settings and failure queue."""
    function = deployment.function(handler_path)
    deployed_stream_arn, mapping = function.mapping()
    region = deployment.region
    sqs = clients.client("sqs", region=region)
    streams = clients.client("dynamodbstreams", region=region)
    # The mapping names moto's stream of the table; the table itself lives in DynamoDB Local.
    stream_arn = stream_arn_of(deployed_stream_arn, clients.client("dynamodb", region=region))
    shard_id = shard_of(streams, stream_arn)

    def send_to_failure_queue(records: list[dict[str, Any]], condition: str, invocations: int) -> None:
        destination = mapping.on_failure_destination
        if destination is None:
            log.error(
                "%d stream records dropped after %s (no on-failure destination)", len(records), condition
            )
            return
        _, _, _, _, account, queue = destination.split(":")
        url = sqs.get_queue_url(QueueName=queue, QueueOwnerAWSAccountId=account)["QueueUrl"]
        message = failure_message(
            records,
            condition,
            invocations,
            function_arn=function.configuration["FunctionArn"],
            shard_id=shard_id,
        )
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(message))

    delivery = StreamDelivery(
        function.load_handler(),
        mapping,
        send_to_failure_queue,
        context=LambdaContext.for_function(function.configuration),
    )
    poller = StreamPoller(
        streams, stream_arn, region=region, name=name, checkpoints=checkpoints, consume=delivery.deliver
    )
    return poller.poll_once


def media_source(deployment: RegionDeployment) -> Callable[[], int]:
    """The media uploads queue -> media processor, as its SQS mapping would deliver it."""
    function = deployment.function(MEDIA_HANDLER)
    queue_arn, mapping = function.mapping()
    poller = QueuePoller(
        clients.client("sqs", region=deployment.region),
        queue_arn,
        function.load_handler(),
        mapping,
        context=LambdaContext.for_function(function.configuration),
    )
    return poller.poll_once


def source_tables_answer(region: str) -> Check:
    """The API health route's question (lambda_functions/api/health.py) as a readiness check."""
    tables = health_route.source_tables(ApiHealthSettings.from_environment(os.environ))
    dynamodb = boto3.client("dynamodb", region_name=region, config=clients.PROBE_CONFIG)
    reads = ThreadPoolExecutor(max_workers=2 * len(tables), thread_name_prefix="api-health-probe")
    return tables_answer(dynamodb, tables, reads, health_route.DEADLINE_SECONDS)


def build_region_app(settings: LocalSettings, region: str) -> web.Application:
    """Sets this process up as `region` (environment first: handlers read it at import)."""
    os.environ.update(settings.aws_environment(region))
    deployment = read_deployment(region, clients.client("lambda", region=region))
    shared = function_environment(settings, deployment.shared_environment())
    os.environ.update(shared)

    host_settings = timeline_host_settings(settings, region, shared)
    app = timeline_host.build_app(host_settings)
    # /health is the region's deep health, as the front door's checks need it: the host's readiness
    # and what the API's GET /health answers in AWS (every source table answers a read).
    app[timeline_host.READINESS].add("api_tables", source_tables_answer(region))
    api = build_api(deployment, app[timeline_host.VERIFIER], settings.config.account)
    # Every path but the host's own /timeline and /health, which keep the host's behaviour.
    app[timeline_host.OTHER_PATHS] = api.handle

    checkpoints = Checkpoints(settings.state_dir / region / "checkpoints.json")
    sources = {
        name: stream_source(deployment, name, handler_path, checkpoints)
        for name, (handler_path, _table) in STREAM_CONSUMERS.items()
    }
    sources["media"] = media_source(deployment)
    stop = threading.Event()

    async def run_event_sources(_app: web.Application):
        threads = [
            threading.Thread(
                target=run_forever, args=(f"{region} {name}", poll, stop, IDLE_POLL_SECONDS), daemon=True
            )
            for name, poll in sources.items()
        ]
        for thread in threads:
            thread.start()
        yield
        stop.set()
        for thread in threads:
            thread.join(timeout=10)

    app.cleanup_ctx.append(run_event_sources)
    return app


def main(argv: list[str] | None = None) -> None:
    [region] = argv if argv is not None else sys.argv[1:]
    logging.getLogger("botocore").setLevel(logging.WARNING)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {region} %(levelname)s %(name)s %(message)s")
    settings = load_local_settings()
    if region not in settings.regions:
        raise SystemExit(f"{region} is not one of the configured regions {', '.join(settings.regions)}.")
    app = build_region_app(settings, region)
    web.run_app(app, host=settings.host, port=settings.api_port(region), access_log=None, print=None)


if __name__ == "__main__":
    main()
