"""The deploy-time publisher of token settings, against moto's SSM in two regions."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from aviary import naming
from lambda_functions.token_settings import publisher

PROPERTIES = {
    "PrimaryRegion": "us-east-1",
    "UserPoolParameter": naming.USER_POOL_PARAMETER,
    "TokenSettingsParameter": naming.TOKEN_SETTINGS_PARAMETER,
}
JWKS = {"keys": [{"kid": "k1", "kty": "RSA", "alg": "RS256", "n": "sXch", "e": "AQAB", "use": "sig"}]}


def _event(request_type: str) -> dict:
    return {
        "RequestType": request_type,
        "ResponseURL": "https://cloudformation-response.invalid/",
        "StackId": "stack",
        "RequestId": "request",
        "LogicalResourceId": "TokenSettings",
        "ResourceProperties": PROPERTIES,
    }


@pytest.fixture
def ssm():
    with mock_aws():
        clients = {region: boto3.client("ssm", region_name=region) for region in ("us-east-1", "us-west-2")}
        clients["us-east-1"].put_parameter(
            Name=naming.USER_POOL_PARAMETER,
            Type="String",
            Value=json.dumps({"region": "us-east-1", "userPoolId": "us-east-1_Abc", "clientId": "client123"}),
        )
        yield clients


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
        ssm_for=lambda region: ssm[region or "us-west-2"],  # the function runs in us-west-2
        fetch_json=fetch_json,
    )
    return responses, fetched


@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_writes_issuer_audience_and_keys_into_its_own_region(ssm, request_type):
    responses, fetched = _run(_event(request_type), ssm, lambda _url: JWKS)
    issuer = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Abc"
    assert responses == [
        ("SUCCESS", naming.TOKEN_SETTINGS_PARAMETER, "", {"Issuer": issuer, "Audience": "client123"})
    ]
    assert fetched == [f"{issuer}/.well-known/jwks.json"]
    stored = ssm["us-west-2"].get_parameter(Name=naming.TOKEN_SETTINGS_PARAMETER)["Parameter"]["Value"]
    assert json.loads(stored) == {"issuer": issuer, "audience": "client123", "jwks": JWKS}
    # Nothing was written in the primary region.
    primary = ssm["us-east-1"].describe_parameters()["Parameters"]
    assert [p["Name"] for p in primary] == [naming.USER_POOL_PARAMETER]


@pytest.mark.parametrize(
    "jwks",
    [{}, {"keys": []}, {"keys": [{"kid": "k1"}]}, ["not", "an", "object"]],
    ids=["empty", "no-keys", "no-n-e", "list"],
)
def test_unusable_keys_fail_the_deploy_and_write_nothing(ssm, jwks):
    responses, _ = _run(_event("Create"), ssm, lambda _url: jwks)
    [(status, _, reason)] = responses
    assert status == "FAILED" and "no usable RSA signing keys" in reason
    assert ssm["us-west-2"].describe_parameters()["Parameters"] == []


def test_an_unreachable_key_endpoint_fails_the_deploy_instead_of_hanging(ssm):
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
    assert ssm["us-west-2"].get_parameter(Name=naming.TOKEN_SETTINGS_PARAMETER)
