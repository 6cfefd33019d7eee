"""Reads a cloud assembly directory (manifest.json and its stack templates) into plain data."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STACK_ARTIFACT = "aws:cloudformation:stack"
NESTED_ASSEMBLY = "cdk:cloud-assembly"  # a CDK Stage synthesizes into one of these


class AssemblyError(Exception):
    """The directory is not a readable cloud assembly; the message names the file and what to do."""


@dataclass(frozen=True)
class StackTemplate:
    """One stack of the assembly: its name, where it deploys, and its template; for a deploy, what the
    manifest says must come first and which bootstrap version its region needs."""

    name: str
    account: str
    region: str
    template: Mapping[str, Any]
    dependencies: tuple[str, ...] = ()  # artifact IDs: other stacks, and this stack's asset manifest
    bootstrap_version: int | None = None  # requiresBootstrapStackVersion
    bootstrap_version_parameter: str | None = None  # the SSM parameter that holds the region's version


def read_assembly(directory: Path) -> tuple[StackTemplate, ...]:
    """Every stack artifact the manifest lists, in manifest order; stray template files are ignored,
    because an old synth can leave templates of stacks the app no longer has."""
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        raise AssemblyError(
            f"{manifest_path} does not exist: synthesize first (cdk synth -o {directory}) "
            "or pass --cdk-out with a cloud assembly directory."
        )
    manifest = _read_json(manifest_path)
    stacks: list[StackTemplate] = []
    for name, artifact in manifest.get("artifacts", {}).items():
        kind = artifact.get("type")
        properties = artifact.get("properties", {})
        if kind == NESTED_ASSEMBLY:
            stacks.extend(read_assembly(directory / properties["directoryName"]))
        elif kind == STACK_ARTIFACT:
            account, region = _environment(name, artifact.get("environment", ""))
            template = _read_json(directory / properties.get("templateFile", f"{name}.template.json"))
            stacks.append(
                StackTemplate(
                    name=name,
                    account=account,
                    region=region,
                    template=template,
                    dependencies=tuple(artifact.get("dependencies", ())),
                    bootstrap_version=properties.get("requiresBootstrapStackVersion"),
                    bootstrap_version_parameter=properties.get("bootstrapStackVersionSsmParameter"),
                )
            )
    if not stacks:
        raise AssemblyError(f"{manifest_path} lists no CloudFormation stacks; is this the right directory?")
    return tuple(stacks)


def _environment(stack: str, environment: str) -> tuple[str, str]:
    # A region is what the whole report is about: an environment-agnostic stack cannot be placed.
    account, _, region = environment.removeprefix("aws://").partition("/")
    if not region or region.startswith("unknown-"):
        raise AssemblyError(
            f"Stack {stack} has environment {environment!r}, which names no region: bind every stack "
            "to an account and region (env=...) so the report can tell regions apart."
        )
    return account, region


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise AssemblyError(f"{path} is missing: the manifest names it; synthesize again.") from None
    except json.JSONDecodeError as error:
        raise AssemblyError(f"{path} is not valid JSON ({error}); synthesize again.") from None
