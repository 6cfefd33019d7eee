"""Deploys stacks of a synthesized cloud assembly into in-process moto, the way `cdk deploy` would.

Minimally what `cdk deploy` does around CloudFormation: the bootstrap bucket and the bootstrap
version parameter, every file asset uploaded to the bucket and key its asset manifest names
(directories zipped), then one CreateStack per stack with dependencies first, a template over
CloudFormation's TemplateBody limit passed by its uploaded URL. Drills then act on what
CloudFormation created (groups, instances, tables), not on a hand-built copy of it.

Why not the CDK CLI, as `make deploy-local` deploys into a moto server: the drills inject faults into
the clients and stores the code under drill is given, so moto must run in the drill's own process,
where no CLI can reach it; and an in-process deploy of a region takes seconds, with no server to
start, no port to hold and nothing left behind. Both paths read the same cloud assembly.
"""

from __future__ import annotations

import functools
import io
import json
import time
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from tools.local_aws.assembly import StackTemplate, read_assembly, with_dependencies_in_order
from tools.local_aws.in_process import aws_client

# CloudFormation refuses a TemplateBody over 51,200 bytes; cdk uploads such templates and passes the URL.
TEMPLATE_BODY_LIMIT = 51_200
CAPABILITIES = ("CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND")
DEFAULT_BOOTSTRAP_VERSION = 6  # what a stack needs when its manifest does not say
_SETTLE_SECONDS = 30.0


class DeployError(RuntimeError):
    """A stack could not be deployed into moto; the message names the stack and what failed."""


@dataclass(frozen=True)
class DeployedResource:
    logical_id: str
    resource_type: str
    physical_id: str


@dataclass(frozen=True)
class DeployedStack:
    name: str
    region: str
    resources: tuple[DeployedResource, ...]
    outputs: dict[str, str]
    # Resource types of the template that moto's CloudFormation does not create (it skips them).
    skipped_types: tuple[str, ...]

    def physical_ids(self, resource_type: str) -> list[str]:
        return [r.physical_id for r in self.resources if r.resource_type == resource_type]


@dataclass(frozen=True)
class Deployment:
    stacks: dict[str, DeployedStack]
    seconds: float

    @property
    def skipped_types(self) -> tuple[str, ...]:
        return tuple(sorted({t for stack in self.stacks.values() for t in stack.skipped_types}))


def deploy(cdk_out: Path, stack_names: Sequence[str]) -> Deployment:
    """Deploy `stack_names` (and the stacks they depend on) from `cdk_out` into the active moto mock."""
    started = time.monotonic()
    deployed: dict[str, DeployedStack] = {}
    bootstrapped: set[tuple[str, str]] = set()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Tried to parse .* not supported by moto")
        for artifact in with_dependencies_in_order(read_assembly(cdk_out), stack_names):
            name = artifact.name
            environment = (artifact.account, artifact.region)
            if environment not in bootstrapped:
                _bootstrap(artifact)
                bootstrapped.add(environment)
            for asset_manifest in artifact.asset_manifests:
                _publish_assets(asset_manifest)
            deployed[name] = _create_stack(artifact)
    return Deployment(deployed, time.monotonic() - started)


def bootstrap_bucket(account: str, region: str) -> str:
    """The default-qualifier bootstrap bucket that `cdk bootstrap` creates and the asset manifests name."""
    return f"cdk-hnb659fds-assets-{account}-{region}"


def _bootstrap(artifact: StackTemplate) -> None:
    """The two things of `cdk bootstrap` a deploy reads: the assets bucket and the version parameter."""
    s3 = aws_client("s3", artifact.region)
    bucket = bootstrap_bucket(artifact.account, artifact.region)
    request: dict[str, Any] = {"Bucket": bucket}
    if artifact.region != "us-east-1":
        request["CreateBucketConfiguration"] = {"LocationConstraint": artifact.region}
    s3.create_bucket(**request)
    if artifact.bootstrap_version_parameter:
        aws_client("ssm", artifact.region).put_parameter(
            Name=artifact.bootstrap_version_parameter,
            Value=str(artifact.bootstrap_version or DEFAULT_BOOTSTRAP_VERSION),
            Type="String",
            Overwrite=True,
        )


def _publish_assets(asset_manifest: Path) -> None:
    """Upload each file asset to every destination its manifest names; directories go up zipped."""
    manifest = json.loads(asset_manifest.read_text())
    if manifest.get("dockerImages"):
        raise DeployError(
            f"{asset_manifest.name} has container image assets, which these drills cannot publish."
        )
    for asset_hash, asset in manifest.get("files", {}).items():
        source = asset_manifest.parent / asset["source"]["path"]
        packaging = asset["source"].get("packaging", "file")
        if packaging == "zip" or source.is_dir():
            body = _zipped(source)
        elif packaging == "file":
            body = source.read_bytes()
        else:
            raise DeployError(
                f"Asset {asset_hash} of {asset_manifest.name} has unknown packaging {packaging!r}."
            )
        for destination in asset["destinations"].values():
            aws_client("s3", destination["region"]).put_object(
                Bucket=destination["bucketName"], Key=destination["objectKey"], Body=body
            )


@functools.lru_cache(maxsize=4)
def _zipped(directory: Path) -> bytes:
    """The directory's files as a zip archive, paths relative to it, in a stable order.

    Kept for the process: an asset directory is named after the hash of its content, so the same
    path always zips to the same archive, and each drill need not zip the host bundle again.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(directory).as_posix())
    return buffer.getvalue()


def _template_url(artifact: StackTemplate) -> str:
    """The HTTPS, path-style URL of the uploaded template, as cdk passes it to CloudFormation."""
    if not artifact.template_object_url:
        raise DeployError(
            f"Stack {artifact.name}'s template is over {TEMPLATE_BODY_LIMIT} bytes and the manifest "
            "names no uploaded copy of it (stackTemplateAssetObjectUrl)."
        )
    bucket, key = artifact.template_object_url.removeprefix("s3://").split("/", 1)
    return f"https://s3.{artifact.region}.amazonaws.com/{bucket}/{key}"


def _create_stack(artifact: StackTemplate) -> DeployedStack:
    cloudformation = aws_client("cloudformation", artifact.region)
    assert artifact.template_file is not None  # read_assembly names every stack's file
    template_text = artifact.template_file.read_text()
    request: dict[str, Any] = {
        "StackName": artifact.name,
        "Capabilities": list(CAPABILITIES),
        "EnableTerminationProtection": artifact.termination_protection,
    }
    if len(template_text.encode()) > TEMPLATE_BODY_LIMIT:
        request["TemplateURL"] = _template_url(artifact)
    else:
        request["TemplateBody"] = template_text

    try:
        cloudformation.create_stack(**request)
    except ClientError as error:
        raise DeployError(f"CreateStack of {artifact.name} in moto failed: {error}") from error

    status = _settled_status(cloudformation, artifact.name)
    if status != "CREATE_COMPLETE":
        raise DeployError(
            f"Stack {artifact.name} ended {status} in moto: {_failure_events(cloudformation, artifact.name)}"
        )
    stack = cloudformation.describe_stacks(StackName=artifact.name)["Stacks"][0]
    resources = tuple(
        DeployedResource(r["LogicalResourceId"], r["ResourceType"], r.get("PhysicalResourceId", ""))
        for r in _stack_resources(cloudformation, artifact.name)
    )
    created = {r.logical_id for r in resources}
    skipped = sorted(
        {
            resource["Type"]
            for logical_id, resource in artifact.template.get("Resources", {}).items()
            if logical_id not in created
        }
    )
    return DeployedStack(
        name=artifact.name,
        region=artifact.region,
        resources=resources,
        outputs={o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs", [])},
        skipped_types=tuple(skipped),
    )


def _settled_status(cloudformation: Any, name: str) -> str:
    # moto creates synchronously; the loop only guards against a future moto that does not.
    deadline = time.monotonic() + _SETTLE_SECONDS
    while True:
        status = cloudformation.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
        if not status.endswith("_IN_PROGRESS") or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def _failure_events(cloudformation: Any, name: str) -> str:
    events = cloudformation.describe_stack_events(StackName=name)["StackEvents"]
    failed = [
        f"{e['LogicalResourceId']} ({e.get('ResourceType')}): {e.get('ResourceStatusReason')}"
        for e in events
        if e.get("ResourceStatus", "").endswith("_FAILED")
    ]
    return "; ".join(failed) or "no resource reported a failure"


def _stack_resources(cloudformation: Any, name: str) -> list[dict[str, Any]]:
    resources: list[dict[str, Any]] = []
    for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=name):
        resources.extend(page["StackResourceSummaries"])
    return resources
