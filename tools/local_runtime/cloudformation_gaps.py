"""What moto's CloudFormation leaves out of a deploy, applied through the service APIs instead.

moto 5.2.5 creates an AWS::S3::Bucket but ignores its NotificationConfiguration and its
VersioningConfiguration (it also cannot create Cognito user pools: see identity.py). The deploy
applies each bucket's notifications and versioning from the deployed template, so the template
stays the single description of what should exist. Versioning matters: accepted media are kept
immutable by deleting later versions of their key (aviary.media).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _buckets(
    template_file: Path, stack: str, cloudformation: Any
) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, str]]:
    """(physical name, properties) of every bucket the deployed template of `stack` declares."""
    resources = json.loads(template_file.read_text())["Resources"]
    physical = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cloudformation.describe_stack_resources(StackName=stack)["StackResources"]
        if r.get("LogicalResourceId")  # moto also lists resources it skipped, without IDs
    }
    return [
        (physical[logical_id], resource.get("Properties", {}))
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::S3::Bucket"
    ], physical


def apply_bucket_versioning(template_file: Path, stack: str, cloudformation: Any, s3: Any) -> int:
    """PutBucketVersioning for every bucket of `stack` whose template turns versioning on."""
    buckets, _ = _buckets(template_file, stack, cloudformation)
    applied = 0
    for name, properties in buckets:
        if properties.get("VersioningConfiguration", {}).get("Status") == "Enabled":
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
            applied += 1
    return applied


def apply_bucket_notifications(
    template_file: Path, stack: str, cloudformation: Any, sqs: Any, s3: Any
) -> int:
    """PutBucketNotificationConfiguration for every bucket of `stack` whose template declares queues."""
    buckets, physical = _buckets(template_file, stack, cloudformation)
    applied = 0
    for name, properties in buckets:
        declared = properties.get("NotificationConfiguration", {})
        queues = [
            _queue_configuration(entry, physical, sqs) for entry in declared.get("QueueConfigurations", [])
        ]
        if not queues:
            continue
        s3.put_bucket_notification_configuration(
            Bucket=name, NotificationConfiguration={"QueueConfigurations": queues}
        )
        applied += 1
    return applied


def _queue_configuration(entry: dict[str, Any], physical: dict[str, str], sqs: Any) -> dict[str, Any]:
    queue = entry["Queue"]
    if isinstance(queue, dict):  # {"Fn::GetAtt": [queue, "Arn"]}: the queue's URL is its physical ID
        logical_id, _attribute = queue["Fn::GetAtt"]
        url = physical[logical_id]
        queue = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    configuration: dict[str, Any] = {"QueueArn": queue, "Events": [entry["Event"]]}
    rules = entry.get("Filter", {}).get("S3Key", {}).get("Rules")
    if rules:
        configuration["Filter"] = {"Key": {"FilterRules": rules}}
    return configuration
