"""Deploys stacks of a synthesized cloud assembly into moto, in this process, the way `cdk deploy` would.

Minimally what `cdk deploy` does around CloudFormation: the bootstrap bucket and the bootstrap
version parameter, every file asset uploaded to the bucket and key its asset manifest names
(directories zipped), then one CreateStack per stack with dependencies first, a template over
CloudFormation's TemplateBody limit passed by its uploaded URL. Drills then act on what
CloudFormation created (groups, instances, tables), not on a hand-built copy of it.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import os
import time
import warnings
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
from botocore.exceptions import ClientError
from moto import mock_aws

from aviary.clients import AWS_CONFIG

# CloudFormation refuses a TemplateBody over 51,200 bytes; cdk uploads such templates and passes the URL.
TEMPLATE_BODY_LIMIT = 51_200
CAPABILITIES = ("CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND")
_SETTLE_SECONDS = 30.0
# Environment that could lead a client away from the in-process mock (a moto server, a profile).
_ENVIRONMENT_TO_CLEAR = ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE")


class DeployError(RuntimeError):
    """A stack could not be deployed into moto; the message names the stack and what failed."""


@contextmanager
def in_process_moto(account: str) -> Iterator[None]:
    """An in-process moto holding `account`, whatever AWS settings the caller's environment has.

    Empty when it starts and discarded when it ends, unless the caller already runs a moto mock (it
    then joins that one). An endpoint URL (a local moto server) or a profile in the environment
    would send clients past the mock, so they are cleared for the duration.
    """
    overrides = {
        "MOTO_ACCOUNT_ID": account,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
    }
    cleared = [
        name for name in os.environ if name in _ENVIRONMENT_TO_CLEAR or name.startswith("AWS_ENDPOINT_URL_")
    ]
    with mock.patch.dict(os.environ, overrides):
        for name in cleared:
            del os.environ[name]
        with mock_aws(), _quiet_about_known_moto_limits():
            yield


# Notices moto logs again and again for limits the drills know and report once: resource types its
# CloudFormation skips (Deployment.skipped_types), and Lambda invocations it cannot run without Docker.
_KNOWN_LIMIT_NOTICES = {
    "moto": "No Moto CloudFormation support",
    "moto.awslambda.models": "error running docker",
}


class _DropNotice(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


@contextmanager
def _quiet_about_known_moto_limits() -> Iterator[None]:
    installed = [(logging.getLogger(name), _DropNotice(text)) for name, text in _KNOWN_LIMIT_NOTICES.items()]
    for logger, notice in installed:
        logger.addFilter(notice)
    try:
        yield
    finally:
        for logger, notice in installed:
            logger.removeFilter(notice)


def aws_client(service: str, region: str) -> Any:
    """A client built from Aviary's one shared Config, as the code under drill builds its own."""
    return boto3.client(service, region_name=region, config=AWS_CONFIG)


@dataclass(frozen=True)
class StackArtifact:
    """One stack of a cloud assembly, as its manifest describes it."""

    name: str
    account: str
    region: str
    template_file: Path
    template_object_url: str | None  # s3://bucket/key of the uploaded template
    termination_protection: bool
    depends_on: tuple[str, ...]  # other stacks, deployed first
    asset_manifests: tuple[Path, ...]
    bootstrap_parameter: str | None
    bootstrap_version: int


def stack_artifacts(cdk_out: Path) -> dict[str, StackArtifact]:
    """Every stack of the cloud assembly in `cdk_out`, by stack name."""
    manifest_file = cdk_out / "manifest.json"
    if not manifest_file.is_file():
        raise DeployError(
            f"{cdk_out} holds no manifest.json: synthesize the app into it first (cdk synth -o {cdk_out})."
        )
    artifacts = json.loads(manifest_file.read_text())["artifacts"]
    stacks: dict[str, StackArtifact] = {}
    for name, artifact in artifacts.items():
        if artifact.get("type") != "aws:cloudformation:stack":
            continue
        properties = artifact.get("properties", {})
        # "aws://account/region"
        account, region = artifact["environment"].removeprefix("aws://").split("/", 1)
        dependencies = artifact.get("dependencies", [])
        stacks[name] = StackArtifact(
            name=name,
            account=account,
            region=region,
            template_file=cdk_out / properties["templateFile"],
            template_object_url=properties.get("stackTemplateAssetObjectUrl"),
            termination_protection=bool(properties.get("terminationProtection", False)),
            depends_on=tuple(
                d for d in dependencies if artifacts.get(d, {}).get("type") == "aws:cloudformation:stack"
            ),
            asset_manifests=tuple(
                cdk_out / artifacts[d]["properties"]["file"]
                for d in dependencies
                if artifacts.get(d, {}).get("type") == "cdk:asset-manifest"
            ),
            bootstrap_parameter=properties.get("bootstrapStackVersionSsmParameter"),
            bootstrap_version=int(properties.get("requiresBootstrapStackVersion", 6)),
        )
    return stacks


def deployment_order(stacks: dict[str, StackArtifact], wanted: Iterable[str]) -> list[str]:
    """`wanted` and every stack they depend on, each after its dependencies (what cdk deploy would do)."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name not in stacks:
            raise DeployError(
                f"The cloud assembly has no stack {name!r}; it has {', '.join(sorted(stacks))}."
            )
        if name in visiting:
            raise DeployError(f"Stack {name} depends on itself through {', '.join(sorted(visiting))}.")
        visiting.add(name)
        for dependency in stacks[name].depends_on:
            visit(dependency)
        visiting.discard(name)
        order.append(name)

    for name in wanted:
        visit(name)
    return order


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
    stacks = stack_artifacts(cdk_out)
    deployed: dict[str, DeployedStack] = {}
    bootstrapped: set[tuple[str, str]] = set()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Tried to parse .* not supported by moto")
        for name in deployment_order(stacks, stack_names):
            artifact = stacks[name]
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


def _bootstrap(artifact: StackArtifact) -> None:
    """The two things of `cdk bootstrap` a deploy reads: the assets bucket and the version parameter."""
    s3 = aws_client("s3", artifact.region)
    bucket = bootstrap_bucket(artifact.account, artifact.region)
    request: dict[str, Any] = {"Bucket": bucket}
    if artifact.region != "us-east-1":
        request["CreateBucketConfiguration"] = {"LocationConstraint": artifact.region}
    s3.create_bucket(**request)
    if artifact.bootstrap_parameter:
        aws_client("ssm", artifact.region).put_parameter(
            Name=artifact.bootstrap_parameter,
            Value=str(artifact.bootstrap_version),
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


def _template_url(artifact: StackArtifact) -> str:
    """The HTTPS, path-style URL of the uploaded template, as cdk passes it to CloudFormation."""
    if not artifact.template_object_url:
        raise DeployError(
            f"Stack {artifact.name}'s template is over {TEMPLATE_BODY_LIMIT} bytes and the manifest "
            "names no uploaded copy of it (stackTemplateAssetObjectUrl)."
        )
    bucket, key = artifact.template_object_url.removeprefix("s3://").split("/", 1)
    return f"https://s3.{artifact.region}.amazonaws.com/{bucket}/{key}"


def _create_stack(artifact: StackArtifact) -> DeployedStack:
    cloudformation = aws_client("cloudformation", artifact.region)
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
    template = json.loads(template_text)
    skipped = sorted(
        {
            resource["Type"]
            for logical_id, resource in template.get("Resources", {}).items()
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
