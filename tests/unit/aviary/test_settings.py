"""Each runtime's settings: what a construct writes is what the runtime reads back, and a missing or
malformed variable stops the runtime with the variable's name."""

from __future__ import annotations

import dataclasses

import pytest

from aviary.api_settings import ApiHealthSettings, ApiMediaSettings, ApiTweetsSettings, ApiUsersSettings
from aviary.consumer_settings import DuplicatePostsSettings, EdgeCountsSettings, MediaProcessorSettings
from aviary.host_settings import TimelineHostSettings
from aviary.settings import EnvironmentSettings, SettingsError
from aviary.timeline_settings import TimelineSettings

MEDIA_URL = "https://media.aviary.example.com"
# One of each, every field given a value other than its default (so a field that is not written,
# or not read back, shows).
EXAMPLES: list[EnvironmentSettings] = [
    ApiTweetsSettings(
        social_graph_table="graph",
        tweets_table="tweets",
        idempotency_table="keys",
        media_table="media",
        counts_table="counts",
        media_base_url=MEDIA_URL,
    ),
    ApiUsersSettings(social_graph_table="graph"),
    ApiMediaSettings(social_graph_table="graph", media_table="media", media_bucket="bucket"),
    ApiHealthSettings(
        tweets_table="tweets", social_graph_table="graph", idempotency_table="keys", media_table="media"
    ),
    TimelineSettings(
        timelines_table="timelines",
        tweets_table="tweets",
        social_graph_table="graph",
        counts_table="counts",
        celebrity_threshold=7,
        max_entries=120,
        retention_days=9,
    ),
    EdgeCountsSettings(counts_table="counts"),
    DuplicatePostsSettings(tweets_table="tweets"),
    MediaProcessorSettings(media_table="media", media_bucket="bucket"),
    TimelineHostSettings(
        region="eu-west-1",
        timelines_table="timelines",
        social_graph_table="graph",
        tweets_table="tweets",
        counts_table="counts",
        celebrity_follower_threshold=7,
        cache_path="/cache/timelines.sqlite",
        cache_mount="/cache",
        port=9090,
        token_settings_parameter="/aviary/token-settings",
        media_base_url=MEDIA_URL,
        host="127.0.0.1",
    ),
    TimelineHostSettings(  # tokens checked against a pool named directly, not through SSM
        region="eu-west-1",
        timelines_table="timelines",
        counts_table="counts",
        celebrity_follower_threshold=7,
        media_base_url=MEDIA_URL,
        jwt_issuer="https://issuer.example.com/pool",
        jwt_audience="client",
        jwks_url="https://issuer.example.com/pool/keys",
    ),
]
# What Lambda itself sets in every function.
LAMBDA_ENVIRONMENT = {"AWS_REGION": "eu-west-1"}
IDS = [f"{type(example).__name__}-{i}" for i, example in enumerate(EXAMPLES)]


def read_back(example: EnvironmentSettings, environment: dict[str, str]) -> EnvironmentSettings:
    return type(example).from_environment({**LAMBDA_ENVIRONMENT, **environment})


@pytest.mark.parametrize("example", EXAMPLES, ids=IDS)
def test_what_is_written_reads_back_as_the_same_settings(example):
    environment = example.to_environment()
    assert all(name.startswith("AVIARY_") for name in environment)
    expected = example
    if isinstance(example, ApiHealthSettings):  # its region comes from Lambda, never the stack
        assert "AWS_REGION" not in environment
        expected = dataclasses.replace(example, region=LAMBDA_ENVIRONMENT["AWS_REGION"])
    assert read_back(example, environment) == expected


@pytest.mark.parametrize("example", EXAMPLES, ids=IDS)
def test_each_required_variable_missing_or_blank_is_named(example):
    environment = example.to_environment()
    required = [name for name, must in type(example).variables().items() if must]
    assert required, "every runtime needs something"
    for name in required:
        for without in ({k: v for k, v in environment.items() if k != name}, {**environment, name: "  "}):
            with pytest.raises(SettingsError, match=rf"^Environment variable {name} is not set"):
                read_back(example, without)


NUMBERED = [e for e in EXAMPLES if any(v.isdigit() for v in e.to_environment().values())]


@pytest.mark.parametrize("example", NUMBERED, ids=[type(e).__name__ for e in NUMBERED])
def test_each_malformed_number_is_named_with_its_rule(example):
    environment = example.to_environment()
    for name in [n for n, v in environment.items() if v.isdigit()]:
        for bad in ("0", "-1", "ten", "1e3", "\u0663", "9" * 16):
            with pytest.raises(SettingsError, match=rf"^Environment variable {name} must be a whole number"):
                read_back(example, {**environment, name: bad})


@pytest.mark.parametrize(
    "value", ["media.aviary.example.com", "ftp://media.aviary.example.com", "https://", f"{MEDIA_URL}/?v=1"]
)
def test_a_media_base_url_that_is_not_an_absolute_http_url_is_named(value):
    environment = EXAMPLES[0].to_environment()
    with pytest.raises(SettingsError, match=r"^Environment variable AVIARY_MEDIA_BASE_URL must be"):
        ApiTweetsSettings.from_environment({**environment, "AVIARY_MEDIA_BASE_URL": value})


def test_optional_numbers_take_their_defaults_and_an_unset_host_listens_everywhere():
    timeline = TimelineSettings.from_environment(
        {
            "AVIARY_TIMELINES_TABLE": "t",
            "AVIARY_TWEETS_TABLE": "w",
            "AVIARY_SOCIAL_GRAPH_TABLE": "g",
            "AVIARY_COUNTS_TABLE": "c",
            "AVIARY_CELEBRITY_THRESHOLD": "5",
        }
    )
    assert (timeline.max_entries, timeline.retention_days) == (800, 30)
    host = TimelineHostSettings.from_environment(
        {k: v for k, v in EXAMPLES[-2].to_environment().items() if k not in ("AVIARY_HOST", "AVIARY_PORT")}
    )
    assert (host.host, host.listen_host, host.port) == (None, "0.0.0.0", 8080)


def test_a_host_without_the_token_parameter_needs_issuer_and_audience():
    environment = EXAMPLES[-1].to_environment()
    for name in ("AVIARY_JWT_ISSUER", "AVIARY_JWT_AUDIENCE"):
        without = {k: v for k, v in environment.items() if k != name}
        with pytest.raises(SettingsError, match=rf"^Environment variable {name} is not set"):
            TimelineHostSettings.from_environment(without)
    del environment["AVIARY_JWKS_URL"]
    environment["AVIARY_JWT_ISSUER"] += "/"
    settings = TimelineHostSettings.from_environment(environment)
    assert settings.jwt_issuer == "https://issuer.example.com/pool"
    assert settings.jwks_url == "https://issuer.example.com/pool/.well-known/jwks.json"
