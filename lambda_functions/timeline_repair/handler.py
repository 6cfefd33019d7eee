"""Lambda, run by an operator: repairs the named users' timelines in this region (aviary.timeline_repair).

    aws lambda invoke --function-name <TimelineRepair function> \
        --cli-binary-format raw-in-base64-out --payload '{"handles": ["alice"]}' out.json

The event names users by handle, by user ID, or both: {"handles": [...], "user_ids": [...]}, at
most 20 in all (more in further invocations). The answer lists, per user, the entries expected,
written and deleted and the DynamoDB calls the repair made.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from aws_lambda_powertools.logging import Logger

from aviary import validation
from aviary.clients import client
from aviary.errors import AviaryError, ValidationError
from aviary.handles import Handles
from aviary.timeline_repair import TimelineRepair
from aviary.timeline_settings import TimelineSettings
from lambda_functions.first_use import BuiltOnFirstUse

SETTINGS = TimelineSettings.from_environment(os.environ)
MAX_USERS = 20  # each a few dozen DynamoDB calls: well inside the function's 30 s

logger = Logger(service="timeline-repair")


def users_of(event: Mapping[str, Any], handles: Handles) -> list[str]:
    """The user IDs an event names (handles resolved); ValidationError naming the field otherwise."""
    if not isinstance(event, Mapping) or not set(event) <= {"handles", "user_ids"}:
        raise ValidationError('The event must be {"handles": [...], "user_ids": [...]}.', field="event")
    named: list[str] = []
    for field, check in (("handles", validation.handle), ("user_ids", validation.user_id)):
        values = event.get(field, [])
        if not isinstance(values, list):
            raise ValidationError(f"{field} must be a list.", field=field)
        for value in values:
            checked = check(value, field)
            named.append(handles.user_id_of(checked, field=field) if field == "handles" else checked)
    if not 1 <= len(named) <= MAX_USERS:
        raise ValidationError(f"Name 1 to {MAX_USERS} users in handles and user_ids.", field="event")
    return list(dict.fromkeys(named))


def build_handler(repair: TimelineRepair, handles: Handles, *, logger: Logger = logger) -> Any:
    @logger.inject_lambda_context(clear_state=True)
    def handler(event: Mapping[str, Any], _context: Any) -> dict[str, Any]:
        try:
            users = users_of(event, handles)
        except AviaryError as error:
            return {"error": error.to_body()["error"]}
        repaired = []
        for user in users:
            result = repair.repair(user)
            logger.info("timeline repaired", extra={"result": asdict(result)})
            repaired.append(asdict(result))
        return {"repaired": repaired}

    return handler


# client() builds one DynamoDB client per process, which both share.
handler = build_handler(
    BuiltOnFirstUse(lambda: TimelineRepair(client("dynamodb"), SETTINGS)),
    BuiltOnFirstUse(lambda: Handles(client("dynamodb"), SETTINGS.social_graph_table)),
)
