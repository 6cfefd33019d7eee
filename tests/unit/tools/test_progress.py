"""Progress lines: one per step, what it does first and how long it took when it ends."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.cloud_assembly import PROJECT
from tools.progress import Progress, duration


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_durations_read_as_seconds_then_minutes():
    assert duration(0.04) == "0.0 s"
    assert duration(4.25) == "4.2 s"
    assert duration(59.9) == "59.9 s"
    assert duration(138.4) == "2 min 18 s"


def test_a_step_says_what_it_does_before_it_runs_and_how_long_it_took_after():
    written: list[str] = []
    clock = Clock()
    progress = Progress(write=written.append, clock=clock)

    with progress.step("Installing things"):
        assert "".join(written) == "Installing things ... "  # shown while the step runs
        clock.now += 82.4
    progress.note("Done.")

    assert "".join(written) == "Installing things ... 1 min 22 s\nDone.\n"


def test_a_failed_step_says_so_and_the_error_goes_on():
    written: list[str] = []
    clock = Clock()

    with (
        pytest.raises(RuntimeError, match="boom"),
        Progress(write=written.append, clock=clock).step("Deploying"),
    ):
        clock.now += 3
        raise RuntimeError("boom")

    assert "".join(written) == "Deploying ... failed after 3.0 s\n"


def _run_step(*command: str) -> subprocess.CompletedProcess[str]:
    # The machine's Python, as the Makefile runs it before the venv exists.
    return subprocess.run(
        ["python3", "-m", "tools.progress", "Doing a thing", "--", *command],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_command_line_step_is_one_line_and_holds_back_a_quiet_commands_output():
    result = _run_step(sys.executable, "-c", "print('chatter nobody needs')")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Doing a thing ... ")
    assert result.stdout.endswith(" s\n") and result.stdout.count("\n") == 1
    assert "chatter" not in result.stdout


def test_the_command_line_step_shows_a_failing_commands_output_and_exit_status():
    result = _run_step(sys.executable, "-c", "import sys; print('the real cause'); sys.exit(3)")

    assert result.returncode == 3
    assert result.stdout.startswith("Doing a thing ... failed after ")
    assert "the real cause" in result.stdout
    assert "exited with status 3" in result.stderr


def test_the_command_line_step_explains_its_usage():
    result = subprocess.run(
        ["python3", "-m", "tools.progress", "no command"], cwd=PROJECT, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "usage:" in result.stderr
