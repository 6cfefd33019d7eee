"""Routes on media: ask for an upload URL."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics

from aviary import clients
from aviary.api_settings import ApiMediaSettings
from aviary.media import MediaService, MediaStore
from lambda_functions.api.http import ApiRequest, Route, dispatch, handle_registry

logger = Logger(service="api-media")
metrics = Metrics(namespace="Aviary", service="api-media")


def routes(media: MediaService) -> Mapping[str, Route]:
    def create_upload(request: ApiRequest):
        body = request.json_body({"content_type", "size"})
        return 201, media.create_upload(request.caller, body.get("content_type"), body.get("size"))

    return {"POST /media/uploads": create_upload}


@cache
def _settings() -> ApiMediaSettings:
    """Read on the first request and kept for the life of the process."""
    return ApiMediaSettings.from_environment(os.environ)


@cache
def _routes() -> Mapping[str, Route]:
    settings = _settings()
    media = MediaService(
        MediaStore(clients.client("dynamodb"), settings.media_table),
        clients.client("s3"),
        settings.media_bucket,
        clock_ms=lambda: time.time_ns() // 1_000_000,
        random_bytes=os.urandom,
    )
    return routes(media)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: Mapping[str, Any], _context: Any) -> dict[str, Any]:
    return dispatch(event, _routes(), logger, handle_registry(_settings().social_graph_table))
