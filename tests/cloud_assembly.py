"""Synthesizes the app with the real CDK CLI, once per variant per test session.

pytest-xdist workers share one directory and a file lock per variant, so each cloud
assembly is synthesized exactly once however many workers ask for it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from aws_cdk.assertions import Template

from stacks import config as config_module
from stacks.config import DeploymentConfig, load_config
from tools.local_aws.assembly import StackTemplate, read_assembly, read_json, read_manifest

PROJECT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Variant:
    """A set of `cdk synth -c key=value` overrides."""

    name: str
    context: dict[str, str] = field(default_factory=dict)


THREE_REGIONS = "us-east-1,us-west-2,eu-west-1"
# One prod variant subscribes an address to the alerts, so the templates are checked with and without.
ALERT_EMAIL = "aviary-alerts@example.com"
VARIANTS = {
    v.name: v
    for v in (
        Variant("prod-2-regions"),
        Variant("local-2-regions", {"stage": "local"}),
        Variant("prod-3-regions", {"regions": THREE_REGIONS, "alertEmail": ALERT_EMAIL}),
        Variant("local-3-regions", {"stage": "local", "regions": THREE_REGIONS}),
    )
}


def project_context(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    return config_module.project_context(PROJECT, overrides)


def cli_environment() -> dict[str, str]:
    """The Makefile's PATH: the venv's Node and Python, then the pinned CDK CLI."""
    env = dict(os.environ)
    venv_bin = Path(os.environ.get("VIRTUAL_ENV", PROJECT / ".venv")) / "bin"
    env["PATH"] = os.pathsep.join([str(venv_bin), str(PROJECT / "node_modules" / ".bin"), env["PATH"]])
    env["CDK_DISABLE_CLI_TELEMETRY"] = "true"
    return env


def cdk_synth(out_dir: Path, context: dict[str, str]) -> subprocess.CompletedProcess[str]:
    overrides = [arg for key, value in context.items() for arg in ("-c", f"{key}={value}")]
    return subprocess.run(
        ["cdk", "synth", "--quiet", "--no-notices", "-o", str(out_dir), *overrides],
        cwd=PROJECT,
        env=cli_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )


class CloudAssembly:
    """Read access to one synthesized cloud assembly (cdk.out), through the reader every tool uses, and the
    config that made it."""

    def __init__(self, directory: Path, variant: Variant) -> None:
        self.directory = directory
        self.variant = variant
        self.config: DeploymentConfig = load_config(project_context(variant.context).get)
        self._templates: dict[str, Template] = {}

    @cached_property
    def manifest(self) -> dict[str, Any]:
        return read_manifest(self.directory)

    @cached_property
    def stack_templates(self) -> dict[str, StackTemplate]:
        """The assembly's stacks as every tool reads them (tools/local_aws/assembly.py), by stack name."""
        return {stack.name: stack for stack in read_assembly(self.directory)}

    @cached_property
    def stacks(self) -> dict[str, Mapping[str, Any]]:
        """Stack artifacts of the manifest, by stack name."""
        return {name: stack.artifact for name, stack in self.stack_templates.items()}

    def template_json(self, stack: str) -> dict[str, Any]:
        return dict(self.stack_templates[stack].template)

    def template(self, stack: str) -> Template:
        if stack not in self._templates:
            self._templates[stack] = Template.from_json(self.template_json(stack))
        return self._templates[stack]

    def resources(self, stack: str, resource_type: str) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resource
            for logical_id, resource in self.template_json(stack)["Resources"].items()
            if resource["Type"] == resource_type
        }

    @cached_property
    def validation_report(self) -> dict[str, Any]:
        return read_json(self.directory / "validation-report.json")


def synthesized(base: Path, variant: Variant) -> Path:
    """The variant's cloud assembly under `base`, synthesizing it first if no worker has yet."""
    from filelock import FileLock

    out_dir = base / variant.name
    done = out_dir / ".complete"
    with FileLock(str(base / f"{variant.name}.lock")):
        if not done.exists():
            result = cdk_synth(out_dir, variant.context)
            if result.returncode != 0:
                raise RuntimeError(f"cdk synth failed for {variant.name}:\n{result.stdout}\n{result.stderr}")
            done.touch()
    return out_dir
