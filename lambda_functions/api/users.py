"""Routes on users: follow and unfollow."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics

from aviary import clients, validation
from aviary.social_graph import SocialGraph
from lambda_functions.api.http import ApiRequest, Route, dispatch

logger = Logger(service="api-users")
metrics = Metrics(namespace="Aviary", service="api-users")


def routes(graph: SocialGraph) -> Mapping[str, Route]:
    def follow(request: ApiRequest):
        followee = validation.handle(request.path.get("handle"))
        graph.follow(request.caller, followee)
        return 200, {"handle": followee, "following": True}

    def unfollow(request: ApiRequest):
        followee = validation.handle(request.path.get("handle"))
        graph.unfollow(request.caller, followee)
        return 200, {"handle": followee, "following": False}

    return {"POST /users/{handle}/follow": follow, "DELETE /users/{handle}/follow": unfollow}


@cache
def _routes() -> Mapping[str, Route]:
    return routes(SocialGraph(clients.client("dynamodb"), os.environ["AVIARY_SOCIAL_GRAPH_TABLE"]))


@metrics.log_metrics
def handler(event: Mapping[str, Any], _context: Any) -> dict[str, Any]:
    return dispatch(event, _routes(), logger)
