"""One changing command at a time per local stage: a second one is refused, naming the first and its pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.cloud_assembly import PROJECT
from tools.local_runtime import __main__ as cli
from tools.local_runtime.lock import StageBusy, StageLock


def test_a_second_lock_on_the_same_stage_is_refused_naming_the_holder_and_its_pid(tmp_path):
    with StageLock(tmp_path, "make deploy-local"), pytest.raises(StageBusy) as refused:
        StageLock(tmp_path, "make stop-local").acquire()

    message = str(refused.value)
    assert message.startswith("make deploy-local is already running on this local stage")
    assert f"pid {os.getpid()}" in message
    assert f"kill {os.getpid()}" in message


def test_a_released_lock_can_be_taken_again_and_other_stages_are_independent(tmp_path):
    with StageLock(tmp_path / "one", "make deploy-local"), StageLock(tmp_path / "two", "make deploy-local"):
        pass
    with StageLock(tmp_path / "one", "make stop-local") as again:
        assert again.path.read_text().split()[0] == str(os.getpid())


def test_a_killed_holder_leaves_no_lock_behind(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from tools.local_runtime.lock import StageLock; "
            "StageLock(Path(sys.argv[1]), 'make deploy-local').acquire(); print('held', flush=True); "
            "time.sleep(60)",
            str(tmp_path),
        ],
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StageBusy, match=f"pid {holder.pid}"):
            StageLock(tmp_path, "make deploy-local").acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        holder.stdout.close()

    with StageLock(tmp_path, "make deploy-local"):
        pass


def test_a_lock_file_not_yet_written_still_gives_a_plain_refusal(tmp_path):
    with StageLock(tmp_path, "make deploy-local") as held:
        held.path.write_text("")
        with pytest.raises(StageBusy, match="Another command is already running on this local stage"):
            StageLock(tmp_path, "make deploy-local").acquire()


@pytest.mark.parametrize(
    "command", ["deploy", "stop", "reset", "region-down us-east-1", "region-up us-east-1"]
)
def test_every_changing_command_stops_at_once_while_another_runs(tmp_path, monkeypatch, capsys, command):
    monkeypatch.setenv("AVIARY_LOCAL_STATE_DIR", str(tmp_path))
    with StageLock(tmp_path, "make deploy-local"):
        assert cli.main(command.split()) == 1

    error = capsys.readouterr().err
    assert error.startswith("aviary local: make deploy-local is already running on this local stage")
    assert f"(pid {os.getpid()}," in error
    assert "Traceback" not in error
    assert sorted(path.name for path in tmp_path.iterdir()) == ["lock"]  # nothing else was touched
