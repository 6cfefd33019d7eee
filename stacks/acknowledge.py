"""One way to acknowledge a finding of a rule set (cdk-nag, CDK validation, checkov), always with a reason."""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnResource, Validations
from constructs import IConstruct

# A reviewer must be able to judge a reason; a few words never let them.
MIN_REASON_WORDS = 8


def _check_reason(rule: str, reason: str) -> None:
    if len(reason.split()) < MIN_REASON_WORDS:
        raise ValueError(f"acknowledgment of {rule} needs a real reason, not {reason!r}")


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge `rule` (e.g. "AwsSolutions-S1" or "AwsSolutions-IAM5[Resource::...]") on `construct`."""
    _check_reason(rule, reason)
    Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))


def skip_checkov(construct: IConstruct, check: str, reason: str) -> None:
    """Skip checkov's `check` (e.g. "CKV_AWS_117") on the CloudFormation resource of `construct`.

    checkov reads skips from the resource's template metadata (`checkov: skip: [{id, comment}]`).
    """
    _check_reason(check, reason)
    resource = construct if isinstance(construct, CfnResource) else construct.node.default_child
    if not isinstance(resource, CfnResource):
        raise ValueError(
            f"{construct.node.path} has no CloudFormation resource for checkov to skip {check} on"
        )
    metadata = resource.get_metadata("checkov") or {}
    skips = [s for s in metadata.get("skip", []) if s["id"] != check]
    resource.add_metadata("checkov", {**metadata, "skip": [*skips, {"id": check, "comment": reason}]})
