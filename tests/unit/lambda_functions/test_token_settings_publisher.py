"""The token settings publisher, against moto's SSM: it reads and writes only its own region."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from aviary import naming
from lambda_functions.token_settings import publisher

PROPERTIES = {
    "Region": "us-west-2",
    "UserPoolParameter": naming.USER_POOL_PARAMETER,
    "TokenSettingsParameter": naming.TOKEN_SETTINGS_PARAMETER,
}
JWKS = {"keys": [{"kid": "k1", "kty": "RSA", "alg": "RS256", "n": "sXch", "e": "AQAB", "use": "sig"}]}
ROTATED = {"keys": [JWKS["keys"][0] | {"kid": "k2"}]}
ISSUER = "https://issuer-cognito-idp.us-east-1.amazonaws.com/us-east-1_Abc"
LOCATION = {"region": "us-east-1", "userPoolId": "us-east-1_Abc", "clientId": "client123", "issuer": ISSUER}


def _event(request_type: str) -> dict:
    return {
        "RequestType": request_type,
        "ResponseURL": "https://cloudformation-response.invalid/",
        "StackId": "stack",
        "RequestId": "request",
        "LogicalResourceId": "TokenSettings",
        "ResourceProperties": PROPERTIES,
    }

    def __getattr__(self, name):
        raise AssertionError(f"the publisher called the primary region's SSM ({name})")


@pytest.fixture
def ssm():
    with mock_aws():
        client = boto3.client("ssm", region_name="us-west-2")  # the function's own region
        client.put_parameter(Name=naming.USER_POOL_PARAMETER, Type="String", Value=json.dumps(LOCATION))
        yield client


def _run(event, ssm, fetch):
    responses, fetched = [], []

    def fetch_json(url):
        fetched.append(url)
        return fetch(url)

    publisher.handler(
        event,
        None,
        respond=lambda _event, status, physical_id, reason="", data=None: responses.append(
            (status, physical_id, reason) + ((data,) if data else ())
        ),
        ssm_for=lambda: ssm,
        fetch_json=fetch_json,
    )
    return responses, fetched


def _published(ssm):
    return json.loads(ssm.get_parameter(Name=naming.TOKEN_SETTINGS_PARAMETER)["Parameter"]["Value"])


@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_writes_the_multi_region_issuer_audience_and_keys_from_its_own_regions_copy(ssm, request_type):
    responses, fetched = _run(_event(request_type), ssm, lambda _url: JWKS)
    assert responses == [
        ("SUCCESS", naming.TOKEN_SETTINGS_PARAMETER, "", {"Issuer": ISSUER, "Audience": "client123"})
    ]
    assert fetched == [f"{ISSUER}/.well-known/jwks.json"]
    assert _published(ssm) == {"issuer": ISSUER, "audience": "client123", "jwks": JWKS}


def test_a_location_without_an_issuer_means_the_original_per_region_issuer():
    location = {"region": "us-east-1", "userPoolId": "us-east-1_Abc", "clientId": "c"}
    settings = publisher.build_token_settings(location, lambda _url: JWKS)
    assert settings["issuer"] == "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Abc"


def test_a_recovery_deploy_keeps_the_published_settings_when_keys_cannot_be_fetched(ssm):
    _run(_event("Create"), ssm, lambda _url: JWKS)

    def unreachable(_url):
        raise TimeoutError("timed out")

    responses, _ = _run(_event("Update"), ssm, unreachable)
    assert responses == [
        ("SUCCESS", naming.TOKEN_SETTINGS_PARAMETER, "", {"Issuer": ISSUER, "Audience": "client123"})
    ]
    assert _published(ssm)["jwks"] == JWKS


def test_the_schedule_publishes_rotated_keys(ssm):
    _run(_event("Create"), ssm, lambda _url: JWKS)
    publisher.handler(PROPERTIES, None, ssm_for=lambda: ssm, fetch_json=lambda _url: ROTATED)
    assert _published(ssm)["jwks"] == ROTATED


def test_a_failed_scheduled_fetch_raises_and_keeps_the_published_keys(ssm):
    _run(_event("Create"), ssm, lambda _url: JWKS)

    def unreachable(_url):
        raise TimeoutError("timed out")

    with pytest.raises(TimeoutError):
        publisher.handler(PROPERTIES, None, ssm_for=lambda: ssm, fetch_json=unreachable)
    assert _published(ssm)["jwks"] == JWKS


@pytest.mark.parametrize(
    "jwks",
    [{}, {"keys": []}, {"keys": [{"kid": "k1"}]}, ["not", "an", "object"]],
    ids=["empty", "no-keys", "no-n-e", "list"],
)
def test_unusable_keys_with_nothing_published_fail_the_deploy_and_write_nothing(ssm, jwks):
    responses, _ = _run(_event("Create"), ssm, lambda _url: jwks)
    [(status, _, reason)] = responses
    assert status == "FAILED" and "no usable RSA signing keys" in reason
    names = [p["Name"] for p in ssm.describe_parameters()["Parameters"]]
    assert names == [naming.USER_POOL_PARAMETER]


def test_an_unreachable_key_endpoint_with_nothing_published_fails_the_deploy(ssm):
    def unreachable(_url):
        raise TimeoutError("timed out")

    responses, _ = _run(_event("Create"), ssm, unreachable)
    assert responses[0][0] == "FAILED" and "TimeoutError" in responses[0][2]


def test_delete_succeeds_and_keeps_the_settings_for_hosts_that_outlive_the_stack(ssm):
    _run(_event("Create"), ssm, lambda _url: JWKS)
    event = _event("Delete") | {"PhysicalResourceId": naming.TOKEN_SETTINGS_PARAMETER}
    responses, fetched = _run(event, ssm, lambda _url: JWKS)
    assert responses == [("SUCCESS", naming.TOKEN_SETTINGS_PARAMETER, "")]
    assert len(fetched) == 0
    assert ssm.get_parameter(Name=naming.TOKEN_SETTINGS_PARAMETER)
