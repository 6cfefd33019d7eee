"""The token settings publisher, against moto's SSM: it reads and writes only its own region."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from aviary import naming
from lambda_functions.token_settings import publisher
from tests.unit.lambda_functions.lambda_context import lambda_context

CONTEXT = lambda_context("aviary-token-settings")
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
    """What CDK's provider framework passes on: CloudFormation's request."""
    return {
        "RequestType": request_type,
        "ResponseURL": "https://cloudformation-response.invalid/",
        "StackId": "stack",
        "RequestId": "request",
        "LogicalResourceId": "TokenSettings",
        "ResourceType": "Custom::AviaryTokenSettings",
        "ResourceProperties": PROPERTIES
        | {"ServiceToken": "arn:aws:lambda:us-west-2:123456789012:function:x"},
    }


@pytest.fixture
def ssm():
    with mock_aws():
        client = boto3.client("ssm", region_name="us-west-2")  # the function's own region
        client.put_parameter(Name=naming.USER_POOL_PARAMETER, Type="String", Value=json.dumps(LOCATION))
        yield client


def _run(event, ssm, fetch):
    """The handler's answer to the framework, and the URLs it fetched."""
    fetched = []

    def fetch_json(url):
        fetched.append(url)
        return fetch(url)

    return publisher.handler(event, CONTEXT, ssm_for=lambda: ssm, fetch_json=fetch_json), fetched


def _published(ssm):
    return json.loads(ssm.get_parameter(Name=naming.TOKEN_SETTINGS_PARAMETER)["Parameter"]["Value"])


ANSWER = {
    "PhysicalResourceId": naming.TOKEN_SETTINGS_PARAMETER,
    "Data": {"Issuer": ISSUER, "Audience": "client123"},
}


def _unreachable(_url):
    raise TimeoutError("timed out")


@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_writes_the_multi_region_issuer_audience_and_keys_from_its_own_regions_copy(ssm, request_type):
    answer, fetched = _run(_event(request_type), ssm, lambda _url: JWKS)
    assert answer == ANSWER
    assert fetched == [f"{ISSUER}/.well-known/jwks.json"]
    assert _published(ssm) == {"issuer": ISSUER, "audience": "client123", "jwks": JWKS}


def test_a_location_without_an_issuer_means_the_original_per_region_issuer():
    location = {"region": "us-east-1", "userPoolId": "us-east-1_Abc", "clientId": "c"}
    settings = publisher.build_token_settings(location, lambda _url: JWKS)
    assert settings["issuer"] == "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Abc"


def test_a_recovery_deploy_keeps_the_published_settings_when_keys_cannot_be_fetched(ssm):
    _run(_event("Create"), ssm, lambda _url: JWKS)
    answer, _ = _run(_event("Update"), ssm, _unreachable)
    assert answer == ANSWER
    assert _published(ssm)["jwks"] == JWKS


def test_a_recovery_deploy_fails_when_the_published_settings_name_another_issuer(ssm):
    _run(_event("Create"), ssm, lambda _url: JWKS)
    moved = LOCATION | {"issuer": "https://cognito-idp.us-west-2.amazonaws.com/us-west-2_New"}
    ssm.put_parameter(Name=naming.USER_POOL_PARAMETER, Type="String", Value=json.dumps(moved), Overwrite=True)
    with pytest.raises(publisher.PublishError, match="TimeoutError: timed out"):
        _run(_event("Update"), ssm, _unreachable)
    assert _published(ssm)["issuer"] == ISSUER


def test_the_schedule_publishes_rotated_keys(ssm):
    _run(_event("Create"), ssm, lambda _url: JWKS)
    scheduled = publisher.handler(PROPERTIES, CONTEXT, ssm_for=lambda: ssm, fetch_json=lambda _url: ROTATED)
    assert scheduled is None
    assert _published(ssm)["jwks"] == ROTATED


def test_a_failed_scheduled_fetch_raises_and_keeps_the_published_keys(ssm):
    _run(_event("Create"), ssm, lambda _url: JWKS)
    with pytest.raises(TimeoutError):
        publisher.handler(PROPERTIES, CONTEXT, ssm_for=lambda: ssm, fetch_json=_unreachable)
    assert _published(ssm)["jwks"] == JWKS


@pytest.mark.parametrize(
    "jwks",
    [{}, {"keys": []}, {"keys": [{"kid": "k1"}]}, ["not", "an", "object"]],
    ids=["empty", "no-keys", "no-n-e", "list"],
)
def test_unusable_keys_with_nothing_published_fail_the_deploy_and_write_nothing(ssm, jwks):
    with pytest.raises(publisher.PublishError, match="no usable RSA signing keys"):
        _run(_event("Create"), ssm, lambda _url: jwks)
    names = [p["Name"] for p in ssm.describe_parameters()["Parameters"]]
    assert names == [naming.USER_POOL_PARAMETER]


def test_an_unreachable_key_endpoint_with_nothing_published_fails_the_deploy_naming_the_error(ssm):
    with pytest.raises(publisher.PublishError, match=r"^TimeoutError: timed out$"):
        _run(_event("Create"), ssm, _unreachable)


def test_delete_keeps_its_physical_id_and_the_settings_for_hosts_that_outlive_the_stack(ssm):
    _run(_event("Create"), ssm, lambda _url: JWKS)
    event = _event("Delete") | {"PhysicalResourceId": naming.TOKEN_SETTINGS_PARAMETER}
    answer, fetched = _run(event, ssm, lambda _url: JWKS)
    # The framework fails a Delete whose answer names another physical ID.
    assert answer == {"PhysicalResourceId": naming.TOKEN_SETTINGS_PARAMETER}
    assert fetched == []
    assert _published(ssm)["jwks"] == JWKS
