"""The local stage's commands, with every process and AWS call stubbed: nothing is deployed here."""

from __future__ import annotations

import pytest

from tools.local_runtime.control import LocalStage
from tools.local_runtime.settings import load_local_settings
from tools.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def stage(tmp_path) -> LocalStage:
    return LocalStage(load_local_settings({"AVIARY_LOCAL_STATE_DIR": str(tmp_path / "state")}))


def stub_deploy_steps(stage: LocalStage, monkeypatch, clock: Clock, calls: list[str]) -> None:
    """Each step of a deploy records itself and takes one second."""

    def step(name, result=None):
        def run(*arguments):
            calls.append(" ".join([name, *arguments[:2]]))
            clock.now += 1
            return result

        return run

    monkeypatch.setattr(stage, "start_emulators", step("start_emulators"))
    monkeypatch.setattr(stage, "cdk", step("cdk"))
    monkeypatch.setattr(stage, "complete_data_stacks", step("complete_data_stacks"))
    monkeypatch.setattr(
        stage, "create_identity", step("create_identity", {"userPoolId": "pool", "clientId": "client"})
    )
    monkeypatch.setattr(stage, "start_runtime", step("start_runtime"))


def test_a_deploy_prints_one_line_per_step_in_the_order_they_run_with_their_times(stage, monkeypatch):
    clock, calls, written = Clock(), [], []
    stub_deploy_steps(stage, monkeypatch, clock, calls)

    stage.deploy(Progress(write=written.append, clock=clock))

    assert calls == [
        "start_emulators",
        "cdk bootstrap aws://123456789012/us-east-1",
        "cdk bootstrap aws://123456789012/us-west-2",
        "cdk deploy --all",
        "complete_data_stacks",
        "create_identity",
        "start_runtime",
    ]
    assert "".join(written).splitlines() == [
        "Starting the local AWS: moto on port 5000, DynamoDB Local on port 8000 ... 1.0 s",
        "cdk bootstrap us-east-1: the CDK's staging bucket and roles in moto ... 1.0 s",
        "cdk bootstrap us-west-2: the CDK's staging bucket and roles in moto ... 1.0 s",
        "cdk deploy --all: synthesize the local stage, deploy its stacks into moto ... 1.0 s",
        "Creating the deployed tables in DynamoDB Local; bucket settings moto left out ... 1.0 s",
        "Creating the user pool; publishing token settings to every region ... 1.0 s",
        "User pool pool (app client client).",
        "Starting the runtime: each region's API and timeline host, replication, front door ... 1.0 s",
        "Deployed in 7.0 s.",
    ]


def test_a_deploy_onto_running_emulators_says_it_keeps_them_and_their_state(stage, monkeypatch):
    clock, calls, written = Clock(), [], []
    stub_deploy_steps(stage, monkeypatch, clock, calls)
    monkeypatch.setattr(stage, "emulators_running", lambda: True)

    stage.deploy(Progress(write=written.append, clock=clock))

    assert "start_emulators" not in calls
    assert "".join(written).splitlines()[0] == (
        "The local AWS is already running (moto http://localhost:5000, DynamoDB Local "
        "http://127.0.0.1:8000); deploying into it, its state kept."
    )


def test_a_failing_step_is_marked_failed_and_no_later_step_runs(stage, monkeypatch):
    clock, calls, written = Clock(), [], []
    stub_deploy_steps(stage, monkeypatch, clock, calls)

    def deploy_fails(*arguments):
        calls.append("cdk " + arguments[0])
        if arguments[0] == "deploy":
            raise RuntimeError("cdk deploy failed")

    monkeypatch.setattr(stage, "cdk", deploy_fails)

    with pytest.raises(RuntimeError, match="cdk deploy failed"):
        stage.deploy(Progress(write=written.append, clock=clock))

    assert calls[-1] == "cdk deploy"
    assert "".join(written).splitlines()[-1] == (
        "cdk deploy --all: synthesize the local stage, deploy its stacks into moto ... failed after 0.0 s"
    )
