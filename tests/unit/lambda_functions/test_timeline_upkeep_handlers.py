"""The follow-stream and timeline-repair Lambda handlers: settings at import, events in, answers out."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any

import pytest

from aviary import clients
from aviary.handles import Handles
from aviary.settings import SettingsError
from aviary.social_graph import SocialGraph
from aviary.timeline_settings import TimelineSettings
from tests.timeline_writers import make_tweet, store_tweets
from tests.unit.aviary.test_follow_timelines import edge_record, timeline
from tests.unit.lambda_functions.lambda_context import lambda_context

pytestmark = pytest.mark.usefixtures("aws_environment")

CONTEXT = lambda_context("aviary-timelines", memory_limit_in_mb=512)


def environment(tables: dict[str, str]) -> dict[str, str]:
    return {
        "AVIARY_TIMELINES_TABLE": tables["timelines"],
        "AVIARY_SOCIAL_GRAPH_TABLE": tables["social-graph"],
        "AVIARY_TWEETS_TABLE": tables["tweets"],
        "AVIARY_COUNTS_TABLE": tables["counts"],
        "AVIARY_CELEBRITY_THRESHOLD": "5",
    }


def load(module: str, monkeypatch: pytest.MonkeyPatch, client: Any, tables: dict[str, str]) -> ModuleType:
    """The handler module imported afresh, as a cold start would, with these settings and client."""
    for name, value in environment(tables).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(clients, "client", lambda _service, **_kwargs: client)
    if module in sys.modules:
        return importlib.reload(sys.modules[module])
    return importlib.import_module(module)


def test_settings_name_the_variable_that_is_missing_or_malformed():
    good = environment({"timelines": "t", "social-graph": "g", "tweets": "w", "counts": "c"})
    assert TimelineSettings.from_environment(good).max_entries == 800
    with pytest.raises(SettingsError, match="AVIARY_COUNTS_TABLE"):
        TimelineSettings.from_environment({**good, "AVIARY_COUNTS_TABLE": ""})
    with pytest.raises(SettingsError, match="AVIARY_TIMELINE_MAX_ENTRIES must be a whole number from 1 to"):
        TimelineSettings.from_environment({**good, "AVIARY_TIMELINE_MAX_ENTRIES": "0"})
    with pytest.raises(SettingsError, match="AVIARY_CELEBRITY_THRESHOLD"):
        TimelineSettings.from_environment({**good, "AVIARY_CELEBRITY_THRESHOLD": "many"})


def test_the_follow_stream_handler_backfills_and_reports_no_failures(dynamo, monkeypatch):
    client, tables = dynamo
    store_tweets(client, tables, make_tweet(1), make_tweet(2))
    SocialGraph(client, tables["social-graph"]).follow("bob", "alice")
    handler = load("lambda_functions.follow_stream.handler", monkeypatch, client, tables).handler

    event = {"Records": [{**edge_record("INSERT", "bob", "alice"), "eventID": "1"}]}
    event["Records"][0]["dynamodb"]["SequenceNumber"] = "100"
    response = handler(event, CONTEXT)

    assert response == {"batchItemFailures": []}
    assert timeline(client, tables, "bob") == [make_tweet(2).tweet_id, make_tweet(1).tweet_id]


def test_the_repair_handler_repairs_users_named_by_handle_or_id_and_says_what_it_did(dynamo, monkeypatch):
    client, tables = dynamo
    Handles(client, tables["social-graph"]).claim("id-bob", "bob")
    SocialGraph(client, tables["social-graph"]).follow("id-bob", "id-alice")
    store_tweets(client, tables, make_tweet(1, author="id-alice"))
    handler = load("lambda_functions.timeline_repair.handler", monkeypatch, client, tables).handler

    answer = handler({"handles": ["Bob"], "user_ids": ["id-carol"]}, CONTEXT)

    [bob, carol] = answer["repaired"]
    assert (bob["user_id"], bob["written"], carol["user_id"], carol["expected"]) == (
        "id-bob",
        1,
        "id-carol",
        0,
    )
    assert bob["calls"] > 0
    assert timeline(client, tables, "id-bob") == [make_tweet(1, author="id-alice").tweet_id]


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({}, "event"),
        ({"users": ["bob"]}, "event"),
        ({"handles": "bob"}, "handles"),
        ({"handles": ["not a handle!"]}, "handles"),
        ({"handles": ["nobody"]}, "handles"),
        ({"user_ids": ["a/b"]}, "user_ids"),
        ({"user_ids": [f"u{n}" for n in range(21)]}, "event"),
    ],
)
def test_the_repair_handler_refuses_an_event_naming_the_field(dynamo, monkeypatch, event, field):
    client, tables = dynamo
    handler = load("lambda_functions.timeline_repair.handler", monkeypatch, client, tables).handler
    answer = handler(event, CONTEXT)
    assert answer["error"]["field"] == field
    assert timeline(client, tables, "bob") == []
