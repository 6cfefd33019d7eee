"""One way to acknowledge a cdk-nag (or CDK validation) finding, always with a reason."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge `rule` (e.g. "AwsSolutions-S1" or "AwsSolutions-IAM5[Resource::...]") on `construct`."""
    if len(reason.split()) < 8:
        # A reviewer must be able to judge the reason; a few words never let them.
        raise ValueError(f"acknowledgment of {rule} needs a real reason, not {reason!r}")
    Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))
