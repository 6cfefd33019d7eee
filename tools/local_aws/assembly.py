"""The one reader of a cloud assembly directory (manifest.json, its stack templates and asset
manifests), for every tool and test: the blast-radius report, `make deploy`, the drills' deploy into
moto and the tests' synthesized variants."""

from __future__ import annotations

import graphlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STACK_ARTIFACT = "aws:cloudformation:stack"
ASSET_MANIFEST = "cdk:asset-manifest"
NESTED_ASSEMBLY = "cdk:cloud-assembly"  # a CDK Stage synthesizes into one of these


class AssemblyError(Exception):
    """The directory is not a readable cloud assembly; the message names the file and what to do."""


@dataclass(frozen=True)
class StackTemplate:
    """One stack of the assembly: its name, where it deploys, and its template; for a deploy, what the
    manifest says must come first, which bootstrap version its region needs, and its assets."""

    name: str
    account: str
    region: str
    template: Mapping[str, Any]
    dependencies: tuple[str, ...] = ()  # artifact IDs: other stacks, and this stack's asset manifest
    bootstrap_version: int | None = None  # requiresBootstrapStackVersion
    bootstrap_version_parameter: str | None = None  # the SSM parameter that holds the region's version
    template_file: Path | None = None
    template_object_url: str | None = None  # s3://bucket/key of the template as uploaded for a deploy
    termination_protection: bool = False
    depends_on: tuple[str, ...] = ()  # of `dependencies`, the stacks
    asset_manifests: tuple[Path, ...] = ()  # of `dependencies`, the asset manifest files
    artifact: Mapping[str, Any] = field(
        default_factory=dict, compare=False, repr=False
    )  # as the manifest has it


def read_manifest(directory: Path) -> dict[str, Any]:
    """The assembly's manifest.json; a missing one is an error that says to synthesize."""
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        raise AssemblyError(
            f"{manifest_path} does not exist: synthesize first (cdk synth -o {directory}) "
            "or pass --cdk-out with a cloud assembly directory."
        )
    return read_json(manifest_path)


def read_assembly(directory: Path) -> tuple[StackTemplate, ...]:
    """Every stack artifact the manifest lists, in manifest order; stray template files are ignored,
    because an old synth can leave templates of stacks the app no longer has."""
    manifest = read_manifest(directory)
    artifacts = manifest.get("artifacts", {})
    stacks: list[StackTemplate] = []
    for name, artifact in artifacts.items():
        kind = artifact.get("type")
        properties = artifact.get("properties", {})
        if kind == NESTED_ASSEMBLY:
            stacks.extend(read_assembly(directory / properties["directoryName"]))
        elif kind == STACK_ARTIFACT:
            account, region = _environment(name, artifact.get("environment", ""))
            template_file = directory / properties.get("templateFile", f"{name}.template.json")
            dependencies = tuple(artifact.get("dependencies", ()))
            stacks.append(
                StackTemplate(
                    name=name,
                    account=account,
                    region=region,
                    template=read_json(template_file),
                    dependencies=dependencies,
                    bootstrap_version=properties.get("requiresBootstrapStackVersion"),
                    bootstrap_version_parameter=properties.get("bootstrapStackVersionSsmParameter"),
                    template_file=template_file,
                    template_object_url=properties.get("stackTemplateAssetObjectUrl"),
                    termination_protection=bool(properties.get("terminationProtection", False)),
                    depends_on=tuple(d for d in dependencies if _kind(artifacts, d) == STACK_ARTIFACT),
                    asset_manifests=tuple(
                        directory / artifacts[d]["properties"]["file"]
                        for d in dependencies
                        if _kind(artifacts, d) == ASSET_MANIFEST
                    ),
                    artifact=artifact,
                )
            )
    if not stacks:
        raise AssemblyError(
            f"{directory / 'manifest.json'} lists no CloudFormation stacks; is this the right directory?"
        )
    return tuple(stacks)


def with_dependencies_in_order(stacks: Sequence[StackTemplate], wanted: Iterable[str]) -> list[StackTemplate]:
    """`wanted` and every stack they depend on, each after its dependencies (what `cdk deploy` does)."""
    by_name = {stack.name: stack for stack in stacks}
    graph: dict[str, tuple[str, ...]] = {}
    pending = list(wanted)
    while pending:
        name = pending.pop()
        if name in graph:
            continue
        if name not in by_name:
            raise AssemblyError(
                f"The cloud assembly has no stack {name!r}; it has {', '.join(sorted(by_name))}."
            )
        graph[name] = by_name[name].depends_on
        pending.extend(by_name[name].depends_on)
    try:
        return [by_name[name] for name in graphlib.TopologicalSorter(graph).static_order()]
    except graphlib.CycleError as error:
        raise AssemblyError(
            f"Stacks depend on each other in a cycle: {' -> '.join(error.args[1])}."
        ) from None


def _kind(artifacts: Mapping[str, Any], artifact_id: str) -> str | None:
    return artifacts.get(artifact_id, {}).get("type")


def _environment(stack: str, environment: str) -> tuple[str, str]:
    # A region is what every reader needs: an environment-agnostic stack cannot be placed or deployed.
    account, _, region = environment.removeprefix("aws://").partition("/")
    if not region or region.startswith("unknown-"):
        raise AssemblyError(
            f"Stack {stack} has environment {environment!r}, which names no region: bind every stack "
            "to an account and region (env=...) so the report can tell regions apart."
        )
    return account, region


def read_json(path: Path) -> Any:
    """A JSON file of the assembly; missing or broken, an error that says to synthesize again."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise AssemblyError(f"{path} is missing: the manifest names it; synthesize again.") from None
    except json.JSONDecodeError as error:
        raise AssemblyError(f"{path} is not valid JSON ({error}); synthesize again.") from None
