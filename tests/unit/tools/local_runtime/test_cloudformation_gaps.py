"""Bucket notifications moto's CloudFormation skips, applied from the template through the S3 API."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_plus

import boto3
import pytest
from moto import mock_aws

from aviary.clients import AWS_CONFIG
from tools.local_runtime.cloudformation_gaps import apply_bucket_notifications, apply_bucket_versioning

REGION = "us-east-1"
STACK = "aviary-media-us-east-1"
PREFIX_RULE = {"Name": "prefix", "Value": "media/"}


def template(outside_queue_arn: str) -> dict[str, Any]:
    """The media stack's shape: a queue, a bucket notifying it by Fn::GetAtt, and buckets that do not."""
    return {
        "Resources": {
            "Uploads": {"Type": "AWS::SQS::Queue"},
            "Media": {
                "Type": "AWS::S3::Bucket",
                "Properties": {
                    "NotificationConfiguration": {
                        "QueueConfigurations": [
                            {
                                "Event": "s3:ObjectCreated:*",
                                "Queue": {"Fn::GetAtt": ["Uploads", "Arn"]},
                                "Filter": {"S3Key": {"Rules": [PREFIX_RULE]}},
                            }
                        ]
                    }
                },
            },
            "Audit": {
                "Type": "AWS::S3::Bucket",
                "Properties": {
                    "NotificationConfiguration": {
                        "QueueConfigurations": [{"Event": "s3:ObjectRemoved:*", "Queue": outside_queue_arn}]
                    }
                },
            },
            "Plain": {"Type": "AWS::S3::Bucket"},
        }
    }


@pytest.fixture
def aws():
    with mock_aws():
        yield {
            service: boto3.client(service, region_name=REGION, config=AWS_CONFIG)
            for service in ("cloudformation", "sqs", "s3")
        }


def queue_arn(sqs: Any, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def s3_events(sqs: Any, url: str) -> list[tuple[str, str]]:
    """(event name, key) of every S3 event waiting on the queue (S3's own test event left out).

    Keys arrive URL-encoded in S3 event notifications.
    """
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
        "Messages", []
    )
    bodies = [json.loads(m["Body"]) for m in messages]
    return sorted(
        (record["eventName"], unquote_plus(record["s3"]["object"]["key"]))
        for body in bodies
        for record in body.get("Records", [])
    )


def test_each_buckets_declared_queue_notifications_are_applied(aws, tmp_path):
    cloudformation, sqs, s3 = aws["cloudformation"], aws["sqs"], aws["s3"]
    outside_url = sqs.create_queue(QueueName="audit")["QueueUrl"]
    body = template(queue_arn(sqs, outside_url))
    template_file = tmp_path / f"{STACK}.template.json"
    template_file.write_text(json.dumps(body))
    cloudformation.create_stack(StackName=STACK, TemplateBody=json.dumps(body))
    physical = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cloudformation.describe_stack_resources(StackName=STACK)["StackResources"]
    }
    uploads_url, media, audit = physical["Uploads"], physical["Media"], physical["Audit"]
    # What the gap is: moto made the bucket without its notifications.
    assert "QueueConfigurations" not in s3.get_bucket_notification_configuration(Bucket=media)

    applied = apply_bucket_notifications(template_file, STACK, cloudformation, sqs, s3)

    assert applied == 2
    [media_queue] = s3.get_bucket_notification_configuration(Bucket=media)["QueueConfigurations"]
    assert media_queue["QueueArn"] == queue_arn(sqs, uploads_url)
    assert media_queue["Events"] == ["s3:ObjectCreated:*"]
    [rule] = media_queue["Filter"]["Key"]["FilterRules"]
    assert (rule["Name"].lower(), rule["Value"]) == ("prefix", "media/")
    [audit_queue] = s3.get_bucket_notification_configuration(Bucket=audit)["QueueConfigurations"]
    assert (audit_queue["QueueArn"], audit_queue["Events"]) == (
        queue_arn(sqs, outside_url),
        ["s3:ObjectRemoved:*"],
    )
    assert "Filter" not in audit_queue
    assert "QueueConfigurations" not in s3.get_bucket_notification_configuration(Bucket=physical["Plain"])

    # And they work: only objects under the prefix reach the uploads queue.
    s3.put_object(Bucket=media, Key="media/alice/01JD0000000000000000000001", Body=b"\xff\xd8\xff")
    s3.put_object(Bucket=media, Key="exports/report.csv", Body=b"a,b")
    assert s3_events(sqs, uploads_url) == [("ObjectCreated:Put", "media/alice/01JD0000000000000000000001")]


def test_a_template_without_queue_notifications_changes_nothing(aws, tmp_path):
    cloudformation, sqs, s3 = aws["cloudformation"], aws["sqs"], aws["s3"]
    body = {"Resources": {"Plain": {"Type": "AWS::S3::Bucket"}, "Queue": {"Type": "AWS::SQS::Queue"}}}
    template_file = tmp_path / "plain.template.json"
    template_file.write_text(json.dumps(body))
    cloudformation.create_stack(StackName="plain", TemplateBody=json.dumps(body))

    assert apply_bucket_notifications(template_file, "plain", cloudformation, sqs, s3) == 0
    [bucket] = s3.list_buckets()["Buckets"]
    assert "QueueConfigurations" not in s3.get_bucket_notification_configuration(Bucket=bucket["Name"])


def test_versioning_the_template_turns_on_is_applied(aws, tmp_path):
    cloudformation, s3 = aws["cloudformation"], aws["s3"]
    body = {
        "Resources": {
            "Media": {
                "Type": "AWS::S3::Bucket",
                "Properties": {"VersioningConfiguration": {"Status": "Enabled"}},
            },
            "Plain": {"Type": "AWS::S3::Bucket"},
        }
    }
    template_file = tmp_path / "media.template.json"
    template_file.write_text(json.dumps(body))
    cloudformation.create_stack(StackName="media", TemplateBody=json.dumps(body))
    physical = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cloudformation.describe_stack_resources(StackName="media")["StackResources"]
    }
    # What the gap is: moto made the bucket without versioning.
    assert "Status" not in s3.get_bucket_versioning(Bucket=physical["Media"])

    assert apply_bucket_versioning(template_file, "media", cloudformation, s3) == 1

    assert s3.get_bucket_versioning(Bucket=physical["Media"])["Status"] == "Enabled"
    assert "Status" not in s3.get_bucket_versioning(Bucket=physical["Plain"])
    first = s3.put_object(Bucket=physical["Media"], Key="k", Body=b"1")["VersionId"]
    second = s3.put_object(Bucket=physical["Media"], Key="k", Body=b"2")["VersionId"]
    assert first != second
