"""Routes on tweets: post (with replies), read, delete, retweet, like."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from aviary import clients, validation
from aviary.api_settings import ApiTweetsSettings
from aviary.media import MediaStore
from aviary.media_urls import MediaUrls
from aviary.tweet_service import TweetService
from lambda_functions.api.http import ApiRequest, Route, dispatch, handle_registry

logger = Logger(service="api-tweets")
metrics = Metrics(namespace="Aviary", service="api-tweets")

REPLAYED = {"idempotent-replayed": "true"}


def routes(service: TweetService, urls: MediaUrls) -> Mapping[str, Route]:
    """The tweet routes over `service`; tweets show their media under `urls`."""

    def post_tweet(request: ApiRequest):
        body = request.json_body({"text", "reply_to", "media_ids"})
        key = validation.idempotency_key(request.headers.get("idempotency-key"))
        tweet, created = service.post(
            request.caller,
            key,
            validation.tweet_text(body.get("text")),
            reply_to=validation.optional_tweet_id(body.get("reply_to"), "reply_to"),
            media_ids=validation.media_ids(body.get("media_ids")),
        )
        if created:
            metrics.add_metric(name="TweetsPosted", unit=MetricUnit.Count, value=1)
        return 201, tweet.to_json(urls), ({} if created else REPLAYED)

    def get_tweet(request: ApiRequest):
        return 200, service.get(validation.tweet_id(request.path.get("id"))).to_json(urls)

    def delete_tweet(request: ApiRequest):
        service.delete(request.caller, validation.tweet_id(request.path.get("id")))
        return 200, {"id": request.path["id"], "deleted": True}

    def retweet(request: ApiRequest):
        key = request.headers.get("idempotency-key")
        tweet, created = service.retweet(
            request.caller,
            validation.tweet_id(request.path.get("id")),
            idempotency_key=None if key is None else validation.idempotency_key(key),
        )
        return 201, tweet.to_json(urls), ({} if created else REPLAYED)

    def like(request: ApiRequest):
        service.like(request.caller, validation.tweet_id(request.path.get("id")))
        return 200, {"id": request.path["id"], "liked": True}

    def unlike(request: ApiRequest):
        service.unlike(request.caller, validation.tweet_id(request.path.get("id")))
        return 200, {"id": request.path["id"], "liked": False}

    return {
        "POST /tweets": post_tweet,
        "GET /tweets/{id}": get_tweet,
        "DELETE /tweets/{id}": delete_tweet,
        "POST /tweets/{id}/retweet": retweet,
        "POST /tweets/{id}/like": like,
        "DELETE /tweets/{id}/like": unlike,
    }


@cache
def _settings() -> ApiTweetsSettings:
    """Read on the first request and kept for the life of the process."""
    return ApiTweetsSettings.from_environment(os.environ)


@cache
def _routes() -> Mapping[str, Route]:
    """Built on the first request and kept for the life of the process."""
    settings = _settings()
    dynamodb = clients.client("dynamodb")
    service = TweetService(
        dynamodb,
        tweets_table=settings.tweets_table,
        social_graph_table=settings.social_graph_table,
        idempotency_table=settings.idempotency_table,
        counts_table=settings.counts_table,
        media_checker=MediaStore(dynamodb, settings.media_table),
        clock_ms=lambda: time.time_ns() // 1_000_000,
        random_bytes=os.urandom,
    )
    return routes(service, MediaUrls(settings.media_base_url))


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: Mapping[str, Any], _context: Any) -> dict[str, Any]:
    return dispatch(event, _routes(), logger, handle_registry(_settings().social_graph_table))
