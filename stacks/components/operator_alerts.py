"""Where a region's alarms send their notifications."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct


class OperatorAlerts(Construct):
    """An encrypted SNS topic for operators to subscribe to (e-mail, chat, paging).

    With `email` (the `alertEmail` setting) that address is subscribed: SNS sends it a
    confirmation first, and alerts arrive once it is confirmed. Without one, nobody hears an alarm
    until a subscriber is added, so a deployment should give one or subscribe another endpoint.
    """

    def __init__(self, scope: Construct, construct_id: str, *, email: str | None) -> None:
        super().__init__(scope, construct_id)
        # Not the AWS managed SNS key: CloudWatch alarms cannot publish to a topic it encrypts,
        # because its key policy cannot be extended to the CloudWatch service.
        key = kms.Key(
            self,
            "Key",
            description="Encrypts Aviary operator alerts",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,  # holds no data at rest beyond queued alerts
        )
        key.grant(iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*")
        self.topic = sns.Topic(
            self, "Topic", display_name="Aviary operator alerts", master_key=key, enforce_ssl=True
        )
        if email is not None:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
