"""The one cloud-assembly reader: what it takes from the manifest, and the order a deploy needs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.local_aws.assembly import AssemblyError, read_assembly, with_dependencies_in_order


def _write_assembly(directory: Path, dependencies: dict[str, list[str]]) -> Path:
    """A manifest with one stack per key, each with its own asset manifest and the given dependencies."""
    artifacts: dict[str, dict] = {}
    for name, needs in dependencies.items():
        (directory / f"{name}.template.json").write_text(json.dumps({"Resources": {}}))
        (directory / f"{name}.assets.json").write_text(json.dumps({"files": {}}))
        artifacts[f"{name}.assets"] = {
            "type": "cdk:asset-manifest",
            "properties": {"file": f"{name}.assets.json"},
        }
        artifacts[name] = {
            "type": "aws:cloudformation:stack",
            "environment": "aws://111122223333/eu-west-1",
            "properties": {"templateFile": f"{name}.template.json", "terminationProtection": name == "Data"},
            "dependencies": [*needs, f"{name}.assets"],
        }
    (directory / "manifest.json").write_text(json.dumps({"artifacts": artifacts}))
    return directory


def test_a_stack_knows_its_stack_dependencies_apart_from_its_asset_manifest(tmp_path):
    stacks = {s.name: s for s in read_assembly(_write_assembly(tmp_path, {"Data": [], "Service": ["Data"]}))}
    service = stacks["Service"]
    assert service.depends_on == ("Data",)
    assert service.asset_manifests == (tmp_path / "Service.assets.json",)
    assert service.template_file == tmp_path / "Service.template.json"
    assert stacks["Data"].termination_protection and not service.termination_protection
    assert service.artifact["environment"] == "aws://111122223333/eu-west-1"


def test_a_deploy_brings_every_dependency_first_and_nothing_else(tmp_path):
    stacks = read_assembly(
        _write_assembly(tmp_path, {"Edge": [], "Data": [], "Media": ["Data"], "Service": ["Media", "Data"]})
    )
    order = [s.name for s in with_dependencies_in_order(stacks, ["Service"])]
    assert order.index("Data") < order.index("Media") < order.index("Service")
    assert "Edge" not in order


def test_an_unknown_stack_or_a_cycle_is_refused_with_what_is_wrong(tmp_path):
    stacks = read_assembly(_write_assembly(tmp_path, {"A": ["B"], "B": ["A"]}))
    with pytest.raises(AssemblyError, match="no stack 'C'"):
        with_dependencies_in_order(stacks, ["C"])
    with pytest.raises(AssemblyError, match="cycle"):
        with_dependencies_in_order(stacks, ["A"])
