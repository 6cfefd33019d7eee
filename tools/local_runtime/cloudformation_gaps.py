"""What moto's CloudFormation leaves out of a deploy, applied through the service APIs instead.

moto 5.2.5 creates an AWS::S3::Bucket but ignores its NotificationConfiguration (it also cannot
create Cognito user pools: see identity.py). The deploy applies each bucket's notifications from
the deployed template, so the template stays the single description of what should exist.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def apply_bucket_notifications(
    template_file: Path, stack: str, cloudformation: Any, sqs: Any, s3: Any
) -> int:
    """PutBucketNotificationConfiguration for every bucket of `stack` whose template declares queues."""
    resources = json.loads(template_file.read_text())["Resources"]
    physical = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cloudformation.describe_stack_resources(StackName=stack)["StackResources"]
        if r.get("LogicalResourceId")  # moto also lists resources it skipped, without IDs
    }
    applied = 0
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::S3::Bucket":
            continue
        declared = resource.get("Properties", {}).get("NotificationConfiguration", {})
        queues = [
            _queue_configuration(entry, physical, sqs) for entry in declared.get("QueueConfigurations", [])
        ]
        if not queues:
            continue
        s3.put_bucket_notification_configuration(
            Bucket=physical[logical_id], NotificationConfiguration={"QueueConfigurations": queues}
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
