"""Recording a real account's AZs: ordinary synths never look them up and say which command does;
with the lookup key set, the app asks the CDK CLI for exactly the missing AZs. Run as the CLI runs
it (CDK_OUTDIR, CDK_CONTEXT_JSON), so no credentials are needed to see what it asks for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from stacks.config import LOOKUP_AZS_CONTEXT, az_context_key, project_context
from tests.cloud_assembly import PROJECT, cli_environment

ACCOUNT = "111122223333"


def run_app(out_dir: Path, settings: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {
        **cli_environment(),
        "CDK_OUTDIR": str(out_dir),
        "CDK_CONTEXT_JSON": json.dumps(project_context(PROJECT, settings)),
    }
    return subprocess.run(
        [sys.executable, "app.py"], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=300
    )


def test_an_ordinary_synth_for_an_unrecorded_account_names_the_command_that_records_it(tmp_path):
    result = run_app(tmp_path, {"account": ACCOUNT})
    assert result.returncode != 0
    assert f"make account-context ACCOUNT={ACCOUNT}" in result.stderr
    assert not (tmp_path / "manifest.json").exists()  # nothing was asked of the CLI


def test_with_lookups_allowed_the_app_asks_the_cli_for_the_missing_azs(tmp_path):
    result = run_app(
        tmp_path, {"account": ACCOUNT, "regions": "eu-west-1,us-west-2", LOOKUP_AZS_CONTEXT: "true"}
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    # One region per run: the CLI looks it up, writes cdk.context.json and runs the app again.
    [missing] = manifest["missing"]
    assert missing["key"] == az_context_key(ACCOUNT, "eu-west-1")
    assert missing["provider"] == "availability-zones"
    assert (missing["props"]["account"], missing["props"]["region"]) == (ACCOUNT, "eu-west-1")


def test_make_account_context_runs_a_synth_with_lookups_for_the_account():
    plan = subprocess.run(
        ["make", "-n", "account-context", f"ACCOUNT={ACCOUNT}", "CONTEXT=-c regions=eu-west-1,us-west-2"],
        cwd=PROJECT, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    [synth] = [line for line in plan.replace("\\\n", " ").splitlines() if "cdk synth --" in line]
    assert f"-c account={ACCOUNT} -c {LOOKUP_AZS_CONTEXT}=true -c regions=eu-west-1,us-west-2" in synth
    assert "--no-lookups" not in synth
    refused = subprocess.run(
        ["make", "-n", "account-context"], cwd=PROJECT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "ACCOUNT": ACCOUNT},  # the shell's ACCOUNT is not a choice made here
    )  # fmt: skip
    assert refused.returncode != 0
    assert "make account-context ACCOUNT=" in refused.stderr
