"""The deployment config: defaults, overrides from the CLI and cdk.json, and one-sentence errors."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stacks.config import (
    DEFAULT_ACCOUNT,
    SETTINGS,
    ConfigError,
    DeploymentConfig,
    Stage,
    az_context_key,
    load_config,
)

CDK_CONTEXT: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[3] / "cdk.context.json").read_text(encoding="utf-8")
)

# A full stop followed by whitespace and a capital letter: the start of a second sentence.
_SECOND_SENTENCE = re.compile(r"\.\s+[A-Z]")


def context_getter(**overrides: Any) -> Callable[[str], Any]:
    """A `try_get_context` over cdk.context.json's content plus the given overrides."""
    values = {**CDK_CONTEXT, **overrides}
    return values.get


def load(**overrides: Any) -> DeploymentConfig:
    return load_config(context_getter(**overrides))


def known_azs(region: str) -> list[str]:
    return CDK_CONTEXT[az_context_key(DEFAULT_ACCOUNT, region)]


def assert_one_sentence_naming(error: ConfigError, key: str) -> str:
    message = str(error)
    assert f"'{key}'" in message, message
    assert message.endswith("."), message
    assert "\n" not in message, message
    assert not _SECOND_SENTENCE.search(message), message
    return message


def config_error(key: str, **overrides: Any) -> str:
    """Load with the overrides, expect a ConfigError naming `key`, and return its message."""
    with pytest.raises(ConfigError) as raised:
        load(**overrides)
    return assert_one_sentence_naming(raised.value, key)


# --- the context the tests run against ---------------------------------------------------------


def test_cdk_context_has_the_azs_the_tests_rely_on():
    assert known_azs("us-east-1")[:3] == ["us-east-1a", "us-east-1b", "us-east-1c"]
    assert known_azs("us-west-2")[:3] == ["us-west-2a", "us-west-2b", "us-west-2c"]
    assert len(known_azs("us-west-2")) == 4
    assert len(known_azs("us-west-1")) == 2
    assert az_context_key(DEFAULT_ACCOUNT, "ca-central-1") not in CDK_CONTEXT


# --- defaults ----------------------------------------------------------------------------------


def test_defaults():
    config = load()
    assert config.stage is Stage.PROD
    assert config.account == "123456789012"
    assert config.region_names == ("us-east-1", "us-west-2")
    assert config.primary_region == "us-east-1"
    assert config.regions[0].availability_zones == ("us-east-1a", "us-east-1b", "us-east-1c")
    assert config.regions[1].availability_zones == ("us-west-2a", "us-west-2b", "us-west-2c")
    assert config.other_regions("us-east-1") == ("us-west-2",)
    assert config.other_regions("us-west-2") == ("us-east-1",)
    assert config.is_local is False
    assert config.required_read_capacity == SETTINGS["readCapacityPerRegion"][0]
    assert config.celebrity_follower_threshold == SETTINGS["celebrityFollowerThreshold"][0]
    assert config.timeline_max_entries == SETTINGS["timelineMaxEntries"][0]
    assert config.media_noncurrent_version_days == SETTINGS["mediaNoncurrentVersionDays"][0]
    assert config.log_retention_days == SETTINGS["logRetentionDays"][0]
    assert config.host_instance_type == SETTINGS["hostInstanceType"][0]
    assert config.domain_name == "aviary.example.com"
    assert config.hosted_zone_id == "Z0123456789EXAMPLE0AB"
    assert config.hosted_zone_name == "example.com"
    assert config.alert_email is None


def test_public_names_sit_under_the_domain():
    config = load(
        domainName="Social.Example.org.", hostedZoneName="example.org", hostedZoneId="Z1D633PJN98FT9"
    )
    assert config.domain_name == "social.example.org"
    assert config.api_name == "api.social.example.org"
    assert config.timeline_name == "timeline.social.example.org"
    assert config.media_name == "media.social.example.org"
    assert config.media_base_url == "https://media.social.example.org"
    assert config.hosted_zone_id == "Z1D633PJN98FT9"


def test_the_domain_may_be_the_zone_itself():
    config = load(domainName="example.com", hostedZoneName="example.com")
    assert config.api_name == "api.example.com"


def test_an_empty_context_value_falls_back_to_the_default():
    # try_get_context answers None for a key nobody set.
    assert load(stage=None, regions=None, azsPerRegion=None) == load()


@pytest.mark.parametrize("stage", ["local", "LOCAL", " local ", "Local"], ids=repr)
def test_local_stage(stage):
    config = load(stage=stage)
    assert config.stage is Stage.LOCAL
    assert config.is_local is True


@pytest.mark.parametrize("stage", ["prod", "PROD", " prod "], ids=repr)
def test_prod_stage(stage):
    config = load(stage=stage)
    assert config.stage is Stage.PROD
    assert config.is_local is False


def test_config_is_frozen():
    config = load()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.stage = Stage.LOCAL  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.regions[0].availability_zones = ()  # type: ignore[misc]
    assert config.stage is Stage.PROD


# --- overrides ---------------------------------------------------------------------------------


def test_cli_string_overrides():
    config = load(
        regions="us-east-1,eu-west-1,us-west-2",
        azsPerRegion="2",
        readCapacityPerRegion="9",
        celebrityFollowerThreshold="500",
        timelineMaxEntries="1200",
        mediaNoncurrentVersionDays="7",
        logRetentionDays="365",
        hostInstanceType=" C6ID.XLarge ",
        account=f" {DEFAULT_ACCOUNT} ",
    )
    assert config.region_names == ("us-east-1", "eu-west-1", "us-west-2")
    assert config.primary_region == "us-east-1"
    assert config.other_regions("eu-west-1") == ("us-east-1", "us-west-2")
    assert [r.availability_zones for r in config.regions] == [
        ("us-east-1a", "us-east-1b"),
        ("eu-west-1a", "eu-west-1b"),
        ("us-west-2a", "us-west-2b"),
    ]
    assert config.account == DEFAULT_ACCOUNT
    assert config.required_read_capacity == 9
    assert config.celebrity_follower_threshold == 500
    assert config.timeline_max_entries == 1200
    assert config.media_noncurrent_version_days == 7
    assert config.log_retention_days == 365
    assert config.host_instance_type == "c6id.xlarge"


def test_cli_regions_may_have_spaces_after_commas():
    assert load(regions="us-west-2, us-east-1").region_names == ("us-west-2", "us-east-1")


def test_json_type_overrides():
    config = load(
        regions=["eu-west-1", "us-west-2", "us-east-1"],
        azsPerRegion=3,
        readCapacityPerRegion=9,
        celebrityFollowerThreshold=500,
        timelineMaxEntries=1200,
        mediaNoncurrentVersionDays=7,
        logRetentionDays=14,
    )
    assert config.region_names == ("eu-west-1", "us-west-2", "us-east-1")
    assert config.primary_region == "eu-west-1"
    assert config.other_regions("us-west-2") == ("eu-west-1", "us-east-1")
    assert config.regions[0].availability_zones == ("eu-west-1a", "eu-west-1b", "eu-west-1c")
    assert config.required_read_capacity == 9
    assert config.celebrity_follower_threshold == 500
    assert config.timeline_max_entries == 1200
    assert config.media_noncurrent_version_days == 7
    assert config.log_retention_days == 14


def test_azs_per_region_up_to_what_every_region_has():
    config = load(azsPerRegion=4)
    assert config.regions[0].availability_zones == tuple(known_azs("us-east-1")[:4])
    assert config.regions[1].availability_zones == tuple(known_azs("us-west-2"))


# --- explicit availability zones ---------------------------------------------------------------

EXPLICIT_AZS = {
    "us-east-1": ["us-east-1f", "us-east-1a", "us-east-1d"],
    "us-west-2": ["us-west-2d", "us-west-2b", "us-west-2a"],
}


@pytest.mark.parametrize(
    "value",
    [json.dumps(EXPLICIT_AZS), EXPLICIT_AZS],
    ids=["json-string", "dict"],
)
def test_explicit_availability_zones_are_used_in_the_given_order(value):
    config = load(availabilityZones=value)
    assert config.regions[0].availability_zones == ("us-east-1f", "us-east-1a", "us-east-1d")
    assert config.regions[1].availability_zones == ("us-west-2d", "us-west-2b", "us-west-2a")


def test_explicit_availability_zones_for_some_regions_only():
    config = load(availabilityZones={"us-west-2": ["us-west-2c", "us-west-2d", "us-west-2a"]})
    assert config.regions[0].availability_zones == ("us-east-1a", "us-east-1b", "us-east-1c")
    assert config.regions[1].availability_zones == ("us-west-2c", "us-west-2d", "us-west-2a")


def test_explicit_availability_zones_as_a_comma_separated_string():
    config = load(azsPerRegion=2, availabilityZones={"us-east-1": "us-east-1e, us-east-1b"})
    assert config.regions[0].availability_zones == ("us-east-1e", "us-east-1b")
    assert config.regions[1].availability_zones == ("us-west-2a", "us-west-2b")


# --- invalid settings --------------------------------------------------------------------------

INVALID = [
    pytest.param("stage", {"stage": "staging"}, id="stage-unknown"),
    pytest.param("stage", {"stage": ""}, id="stage-empty"),
    pytest.param("account", {"account": "12345"}, id="account-too-short"),
    pytest.param("account", {"account": "1234567890123"}, id="account-too-long"),
    pytest.param("account", {"account": "12345678901a"}, id="account-not-digits"),
    pytest.param("regions", {"regions": "us-east-1"}, id="regions-one"),
    pytest.param("regions", {"regions": ["us-east-1"]}, id="regions-one-json"),
    pytest.param("regions", {"regions": []}, id="regions-none"),
    pytest.param("regions", {"regions": "us-east-1,,us-west-2"}, id="regions-empty-entry"),
    pytest.param("regions", {"regions": "US-EAST-1,us-west-2"}, id="regions-malformed-upper"),
    pytest.param("regions", {"regions": "us-east-1,uswest2"}, id="regions-malformed"),
    pytest.param("regions", {"regions": "us-east-1,ca-central-1"}, id="regions-no-az-context"),
    pytest.param("regions", {"regions": 5}, id="regions-not-a-list"),
    pytest.param("regions", {"account": "210987654321"}, id="regions-no-az-context-for-account"),
    pytest.param("azsPerRegion", {"azsPerRegion": 1}, id="azsPerRegion-1"),
    pytest.param("azsPerRegion", {"azsPerRegion": "1"}, id="azsPerRegion-1-string"),
    pytest.param("azsPerRegion", {"azsPerRegion": 0}, id="azsPerRegion-0"),
    pytest.param("azsPerRegion", {"azsPerRegion": 5}, id="azsPerRegion-more-than-us-west-2-has"),
    pytest.param(
        "azsPerRegion",
        {"regions": "us-east-1,us-west-1", "azsPerRegion": 3},
        id="azsPerRegion-more-than-us-west-1-has",
    ),
    pytest.param(
        "availabilityZones",
        {"availabilityZones": {"us-east-1": ["us-east-1a", "us-east-1b", "us-east-1c"], "eu-west-1": []}},
        id="availabilityZones-region-not-in-regions",
    ),
    pytest.param(
        "availabilityZones",
        {"availabilityZones": {"us-east-1": ["us-east-1a", "us-east-1b"]}},
        id="availabilityZones-fewer-than-azsPerRegion",
    ),
    pytest.param(
        "availabilityZones",
        {"azsPerRegion": 2, "availabilityZones": {"us-east-1": ["us-east-1a", "us-east-1b", "us-east-1c"]}},
        id="availabilityZones-more-than-azsPerRegion",
    ),
    pytest.param(
        "availabilityZones",
        {"availabilityZones": {"us-east-1": ["us-east-1a", "us-east-1a", "us-east-1b"]}},
        id="availabilityZones-duplicate-az",
    ),
    pytest.param(
        "availabilityZones", {"availabilityZones": "us-east-1=us-east-1a"}, id="availabilityZones-not-json"
    ),
    pytest.param("availabilityZones", {"availabilityZones": "{"}, id="availabilityZones-truncated-json"),
    pytest.param(
        "availabilityZones", {"availabilityZones": '["us-east-1a"]'}, id="availabilityZones-json-not-object"
    ),
    pytest.param(
        "availabilityZones", {"availabilityZones": {"us-east-1": 3}}, id="availabilityZones-not-a-list"
    ),
    pytest.param("readCapacityPerRegion", {"readCapacityPerRegion": 0}, id="readCapacityPerRegion-0"),
    pytest.param("readCapacityPerRegion", {"readCapacityPerRegion": -1}, id="readCapacityPerRegion--1"),
    pytest.param(
        "readCapacityPerRegion", {"readCapacityPerRegion": "-1"}, id="readCapacityPerRegion--1-string"
    ),
    pytest.param("readCapacityPerRegion", {"readCapacityPerRegion": "abc"}, id="readCapacityPerRegion-abc"),
    pytest.param("readCapacityPerRegion", {"readCapacityPerRegion": True}, id="readCapacityPerRegion-True"),
    pytest.param("readCapacityPerRegion", {"readCapacityPerRegion": "2.5"}, id="readCapacityPerRegion-2.5"),
    pytest.param(
        "celebrityFollowerThreshold", {"celebrityFollowerThreshold": 0}, id="celebrityFollowerThreshold-0"
    ),
    pytest.param("timelineMaxEntries", {"timelineMaxEntries": 0}, id="timelineMaxEntries-0"),
    pytest.param(
        "mediaNoncurrentVersionDays", {"mediaNoncurrentVersionDays": 0}, id="mediaNoncurrentVersionDays-0"
    ),
    pytest.param("logRetentionDays", {"logRetentionDays": 0}, id="logRetentionDays-0"),
    pytest.param("logRetentionDays", {"logRetentionDays": 13}, id="logRetentionDays-13"),
    pytest.param("logRetentionDays", {"logRetentionDays": "13"}, id="logRetentionDays-13-string"),
    pytest.param("hostInstanceType", {"hostInstanceType": "m6i.large"}, id="hostInstanceType-no-store"),
    pytest.param("hostInstanceType", {"hostInstanceType": "m6id"}, id="hostInstanceType-malformed"),
    pytest.param("domainName", {"domainName": "aviary"}, id="domainName-one-label"),
    pytest.param("domainName", {"domainName": "avi_ary.example.com"}, id="domainName-underscore"),
    pytest.param("domainName", {"domainName": "-aviary.example.com"}, id="domainName-leading-hyphen"),
    pytest.param("domainName", {"domainName": "aviary..example.com"}, id="domainName-empty-label"),
    pytest.param("domainName", {"domainName": "https://aviary.example.com"}, id="domainName-url"),
    pytest.param("domainName", {"domainName": "aviary.example.org"}, id="domainName-outside-the-zone"),
    pytest.param("domainName", {"domainName": "notexample.com"}, id="domainName-suffix-but-not-inside"),
    pytest.param(
        "domainName", {"domainName": f"{'a' * 50}.example.com"}, id="domainName-too-long-for-a-certificate"
    ),
    pytest.param("hostedZoneId", {"hostedZoneId": "Z123 456"}, id="hostedZoneId-space"),
    pytest.param("hostedZoneId", {"hostedZoneId": "z0123456789example0ab"}, id="hostedZoneId-lower-case"),
    pytest.param("hostedZoneId", {"hostedZoneId": "0123456789EXAMPLE0AB"}, id="hostedZoneId-no-Z"),
    pytest.param("hostedZoneId", {"hostedZoneId": "/hostedzone/Z0123"}, id="hostedZoneId-path"),
    pytest.param("hostedZoneName", {"hostedZoneName": "com"}, id="hostedZoneName-top-level-only"),
    pytest.param("hostedZoneName", {"hostedZoneName": "exa mple.com"}, id="hostedZoneName-space"),
]


@pytest.mark.parametrize(("key", "overrides"), INVALID)
def test_invalid_setting_raises_one_sentence_naming_it(key, overrides):
    config_error(key, **overrides)


@pytest.mark.parametrize(
    "regions",
    ["us-east-1,us-west-2,us-east-1", ["us-east-1", "us-east-1"], "us-west-2, us-east-1 ,us-west-2"],
    ids=["string", "json-list", "spaces"],
)
def test_duplicate_regions_name_the_duplicate(regions):
    message = config_error("regions", regions=regions)
    duplicate = "us-west-2" if str(regions).count("us-west-2") > 1 else "us-east-1"
    other = "us-east-1" if duplicate == "us-west-2" else "us-west-2"
    assert duplicate in message
    assert other not in message
    assert "more than once" in message


def test_malformed_region_is_named():
    message = config_error("regions", regions="us-east-1,moon-base-1a")
    assert "moon-base-1a" in message


def test_region_without_az_context_is_named():
    message = config_error("regions", regions="us-east-1,ca-central-1")
    assert "ca-central-1" in message
    assert "cdk.context.json" in message


def test_explicit_az_outside_the_region_is_named():
    message = config_error(
        "availabilityZones",
        availabilityZones={"us-east-1": ["us-east-1a", "us-east-1z", "us-east-1b"]},
    )
    assert "us-east-1z" in message


def test_explicit_az_of_another_region_is_rejected():
    message = config_error(
        "availabilityZones",
        availabilityZones={"us-east-1": ["us-east-1a", "us-west-2a", "us-east-1b"]},
    )
    assert "us-west-2a" in message


def test_explicit_az_list_of_the_wrong_length_names_both_settings():
    message = config_error("availabilityZones", availabilityZones={"us-west-2": ["us-west-2a", "us-west-2b"]})
    assert "'azsPerRegion'" in message
    assert "us-west-2" in message


def test_availability_zones_for_a_region_not_deployed_is_named():
    message = config_error(
        "availabilityZones",
        availabilityZones={"eu-central-1": ["eu-central-1a", "eu-central-1b", "eu-central-1c"]},
    )
    assert "eu-central-1" in message
    assert "'regions'" in message


def test_unknown_stage_is_quoted():
    message = config_error("stage", stage="staging")
    assert "'staging'" in message


def test_bad_account_is_quoted():
    message = config_error("account", account="1234")
    assert "'1234'" in message


def test_domain_outside_the_zone_names_both():
    message = config_error("domainName", domainName="aviary.example.org")
    assert "aviary.example.org" in message and "example.com" in message and "'hostedZoneName'" in message


def test_domain_too_long_for_a_certificate_says_how_long():
    domain = f"{'a' * 45}.example.com"
    message = config_error("domainName", domainName=domain)
    assert f"timeline.{domain} 66 characters" in message and "64" in message


def test_log_retention_lists_the_allowed_periods():
    message = config_error("logRetentionDays", logRetentionDays=13)
    assert "13" in message
    assert "14" in message
    assert "3653" in message


def test_alert_email_is_one_address():
    assert load(alertEmail=" ops@example.com ").alert_email == "ops@example.com"
    for bad in (
        "ops",
        "ops@example",
        "@example.com",
        "ops@@example.com",
        "a@x.com,b@x.com",
        "ops@exa mple.com",
    ):
        message = config_error("alertEmail", alertEmail=bad)
        assert repr(bad.strip()) in message


# --- every setting is read ---------------------------------------------------------------------

# One invalid value per SETTINGS key: an error naming the key proves load_config reads it.
INVALID_BY_KEY: dict[str, Any] = {
    "stage": "staging",
    "account": "not-an-account",
    "regions": "us-east-1",
    "azsPerRegion": 1,
    "availabilityZones": "not json",
    "readCapacityPerRegion": 0,
    "celebrityFollowerThreshold": 0,
    "timelineMaxEntries": 0,
    "mediaNoncurrentVersionDays": 0,
    "logRetentionDays": 0,
    "hostInstanceType": "t3.micro",
    "domainName": "not a name",
    "hostedZoneId": "example.com",
    "hostedZoneName": "com",
    "alertEmail": "ops at example.com",
}


def test_invalid_values_cover_every_setting():
    assert set(INVALID_BY_KEY) == set(SETTINGS)


@pytest.mark.parametrize("key", list(SETTINGS))
def test_every_setting_is_read(key):
    config_error(key, **{key: INVALID_BY_KEY[key]})


def test_load_config_asks_for_every_setting():
    asked: list[str] = []
    values = context_getter()

    def recording(key: str) -> Any:
        asked.append(key)
        return values(key)

    load_config(recording)
    assert set(SETTINGS) <= set(asked)
    for region in ("us-east-1", "us-west-2"):
        assert az_context_key(DEFAULT_ACCOUNT, region) in asked
