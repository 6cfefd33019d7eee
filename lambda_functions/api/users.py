"""Routes on users: follow and unfollow, by handle (a handle nobody holds is 404 naming it)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics

from aviary import clients, validation
from aviary.api_settings import ApiUsersSettings
from aviary.errors import ValidationError
from aviary.handles import Handles
from aviary.social_graph import SocialGraph
from lambda_functions.api.http import ApiRequest, Route, dispatch, handle_registry

logger = Logger(service="api-users")
metrics = Metrics(namespace="Aviary", service="api-users")


def routes(graph: SocialGraph, handles: Handles) -> Mapping[str, Route]:
    def followee_of(request: ApiRequest) -> tuple[str, str]:
        handle = validation.handle(request.path.get("handle"))
        followee = handles.user_id_of(handle)
        if followee == request.caller:
            raise ValidationError(
                f"You cannot follow or unfollow yourself ({handle}); name another user's handle.",
                field="handle",
            )
        return handle, followee

    def follow(request: ApiRequest):
        handle, followee = followee_of(request)
        graph.follow(request.caller, followee)
        return 200, {"handle": handle, "user_id": followee, "following": True}

    def unfollow(request: ApiRequest):
        handle, followee = followee_of(request)
        graph.unfollow(request.caller, followee)
        return 200, {"handle": handle, "user_id": followee, "following": False}

    return {"POST /users/{handle}/follow": follow, "DELETE /users/{handle}/follow": unfollow}


@cache
def _settings() -> ApiUsersSettings:
    """Read on the first request and kept for the life of the process."""
    return ApiUsersSettings.from_environment(os.environ)


@cache
def _routes() -> Mapping[str, Route]:
    table = _settings().social_graph_table
    return routes(SocialGraph(clients.client("dynamodb"), table), handle_registry(table))


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: Mapping[str, Any], _context: Any) -> dict[str, Any]:
    return dispatch(event, _routes(), logger, handle_registry(_settings().social_graph_table))
