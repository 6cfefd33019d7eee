"""The local stage's commands, with every process and AWS call stubbed: nothing is deployed here."""

from __future__ import annotations

import subprocess

import pytest

from tests.cloud_assembly import PROJECT
from tools.local_runtime import __main__ as cli
from tools.local_runtime.control import REGION_ALREADY_UP, REGION_BACK, REGION_RESTARTED, LocalStage
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


# -- commands against a stage that is not (fully) running -------------------------------------------

NOT_RUNNING = "aviary local: The local stage is not running; run make deploy-local first.\n"
# Ports nothing of a developer's own stage uses, so these tests never reach a running stage.
UNUSED_PORTS = {
    "AVIARY_LOCAL_MOTO_PORT": "5397",
    "AVIARY_LOCAL_DYNAMODB_PORT": "5398",
    "AVIARY_LOCAL_FRONT_DOOR_PORT": "8397",
    "AVIARY_LOCAL_FIRST_API_PORT": "8398",
}


@pytest.fixture
def stopped_stage(tmp_path, monkeypatch):
    """The environment of a stage whose state directory is `tmp_path` and whose ports nothing answers."""
    for name, value in {**UNUSED_PORTS, "AVIARY_LOCAL_STATE_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    return tmp_path


@pytest.fixture
def sleeper():
    """A live process of our own whose pid can stand in a pid file (never the test's own pid)."""
    process = subprocess.Popen(["sleep", "600"], start_new_session=True)  # as the stage starts its own
    yield process.pid
    process.kill()
    process.wait()


def pretend_running(state_dir, pid: int, *names: str) -> None:
    (state_dir / "pids").mkdir(parents=True, exist_ok=True)
    for name in names:
        (state_dir / "pids" / f"{name}.pid").write_text(str(pid))


@pytest.mark.parametrize(
    "command", ["settle", "status", "token alice", "region-down us-east-1", "region-up us-east-1"]
)
def test_a_command_against_a_stopped_stage_says_so_in_one_line_and_fails(stopped_stage, capsys, command):
    assert cli.main(command.split()) == 1

    out, error = capsys.readouterr()
    assert error == NOT_RUNNING
    assert out == ""


def test_settle_and_status_name_what_is_missing_from_a_partly_running_stage(stopped_stage, sleeper, capsys):
    pretend_running(stopped_stage, sleeper, "moto", "dynamodb-local", "replication", "front-door")
    (stopped_stage / "down").mkdir()
    (stopped_stage / "down" / "us-west-2").write_text("0")  # taken down on purpose: not missing

    assert cli.main(["settle"]) == 1
    assert capsys.readouterr().err.startswith(
        "aviary local: The local stage is only partly running (region-us-east-1 not); "
        "run make deploy-local to start it again"
    )

    assert cli.main(["status"]) == 1
    out, error = capsys.readouterr()
    assert "us-east-1              http://127.0.0.1:8398  (up, health no answer)" in out
    assert "us-west-2              http://127.0.0.1:8399  (DOWN, health no answer)" in out
    assert "(region-us-east-1 not)" in error


def test_a_stage_that_stops_answering_mid_command_is_a_sentence_not_a_traceback(
    stopped_stage, sleeper, capsys
):
    # The pid files say the emulators run, but nothing answers on their ports.
    pretend_running(stopped_stage, sleeper, "moto", "dynamodb-local")

    assert cli.main(["token", "alice"]) == 1

    error = capsys.readouterr().err
    assert error.startswith(
        "aviary local: the local AWS did not answer (Could not connect to the endpoint URL"
    )
    assert error.endswith("make status-local says what is running, make deploy-local starts it again.\n")
    assert "Traceback" not in error


# -- region-up and region-down say what they found ----------------------------------------------------


def test_region_up_says_whether_the_region_was_down_had_died_or_was_already_up(stage, sleeper, monkeypatch):
    monkeypatch.setattr(stage, "check_running", lambda **_: None)
    started: list[str] = []
    routed_again: list[str] = []
    monkeypatch.setattr(stage, "start_region", started.append)
    # A region brought back is waited for until the front door routes to the first region up again.
    monkeypatch.setattr(stage, "wait_for_front_door", lambda: routed_again.append(started[-1]))

    pretend_running(stage.settings.state_dir, sleeper, "region-us-east-1")
    assert stage.region_up("us-east-1") == REGION_ALREADY_UP
    assert started == []

    assert stage.region_down("us-east-1") is True  # kills our sleeper, as a failure would
    assert stage.region_down("us-east-1") is False
    assert stage.region_up("us-east-1") == REGION_BACK
    assert not stage.settings.is_down("us-east-1")

    assert stage.region_up("us-west-2") == REGION_RESTARTED  # not down, yet no process
    assert started == ["us-east-1", "us-west-2"]
    assert routed_again == ["us-east-1", "us-west-2"]


def test_a_finished_deploy_says_what_to_run_next_and_how_to_stop(stage):
    text = cli.next_steps(stage.settings)

    assert "ALICE=$(make -s token USER=alice | tail -1)" in text
    assert 'curl -s -H "Authorization: Bearer $ALICE" http://127.0.0.1:8080/timeline' in text
    assert text.splitlines()[-1].startswith("When you are done: make stop-local")
    # The token command is the walk-through's own first step, as the README runs it.
    readme = (PROJECT / "README.md").read_text()
    assert "ALICE=$(make -s token USER=alice | tail -1)" in readme.split("<!-- walkthrough:start -->")[1]
