"""The one shape of queue that holds what exhausted its retries."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.acknowledge import acknowledge, skip_checkov


def waive_kms_only_encryption_check(queue: sqs.Queue) -> None:
    """checkov's CKV_AWS_27 recognises a KMS key only; Aviary's queues use SQS-managed encryption."""
    skip_checkov(
        queue,
        "CKV_AWS_27",
        "The queue is encrypted at rest with SQS-managed keys (SqsManagedSseEnabled); the check "
        "only recognises a KMS key, which would add a key policy and cost for no added control.",
    )


def failure_queue(scope: Construct, construct_id: str, *, holds: str) -> sqs.Queue:
    """Where `holds` wait for an operator after their retries ran out; an alarm fires at depth 1."""
    queue = sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=Duration.days(14),
    )
    acknowledge(
        queue,
        "AwsSolutions-SQS3",
        f"This queue is itself the place of last resort for {holds}; a queue behind it would "
        "only move the same messages once more.",
    )
    waive_kms_only_encryption_check(queue)
    return queue
