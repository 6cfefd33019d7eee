"""The shared botocore Config: short timeouts, few retries, one client per process and target."""

from __future__ import annotations

from aviary import clients


def test_every_client_gets_short_timeouts_and_at_most_three_attempts():
    client = clients.client("dynamodb", region="eu-west-1")
    config = client.meta.config
    assert config.connect_timeout <= 1
    assert config.read_timeout <= 3
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}


def test_clients_are_built_once_per_service_region_and_endpoint():
    first = clients.client("s3", region="eu-west-1")
    assert clients.client("s3", region="eu-west-1") is first
    assert clients.client("s3", region="eu-west-2") is not first
    other_endpoint = clients.client("s3", region="eu-west-1", endpoint_url="http://localhost:5000")
    assert other_endpoint is not first
    assert other_endpoint.meta.endpoint_url == "http://localhost:5000"


def test_streams_calls_use_the_regional_endpoint_not_the_account_one():
    # moto cannot intercept account-based endpoints: boto3 would send streams calls to hosts it never sees.
    client = clients.client("dynamodbstreams", region="us-east-1")
    assert client.meta.config.account_id_endpoint_mode == "disabled"
