"""Background processes of the local stage: started with a pid file and a log in .local/, stopped by pid.

A process's log is appended to across runs (a region brought down and up again keeps its history);
when one fails to start, what is shown is only what this start wrote.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tools.local_runtime.settings import PROJECT


class StartFailed(RuntimeError):
    """A process did not come up; the message points at its log."""


# Lines of a log shown with an error: enough for a traceback, not a screenful of history.
SHOWN_LOG_LINES = 30


class LocalProcesses:
    def __init__(self, state_dir: Path) -> None:
        self.pid_dir = state_dir / "pids"
        self.log_dir = state_dir / "logs"
        # Where each log ended when this object last started its process: its own output begins there.
        self._log_starts: dict[str, int] = {}

    def pid_file(self, name: str) -> Path:
        return self.pid_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def pid(self, name: str) -> int | None:
        """The pid of `name` if it is running (a stale pid file is removed)."""
        path = self.pid_file(name)
        if not path.exists():
            return None
        pid = int(path.read_text().strip())
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            path.unlink(missing_ok=True)
            return None
        if _is_zombie(pid):
            path.unlink(missing_ok=True)
            return None
        return pid

    def start(self, name: str, module: str, *args: str, environment: dict[str, str]) -> int:
        """`python -m module args` in its own session, so stopping it stops its children too."""
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file(name).open("ab") as log:
            self._log_starts[name] = log.tell()
            process = subprocess.Popen(
                [sys.executable, "-m", module, *args],
                cwd=PROJECT,
                env={**os.environ, **environment, "PYTHONUNBUFFERED": "1"},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid_file(name).write_text(str(process.pid))
        return process.pid

    def stop(self, name: str, timeout_seconds: float = 10) -> bool:
        """Stops `name` (TERM, then KILL after the timeout); False if it was not running."""
        pid = self.pid(name)
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        self.pid_file(name).unlink(missing_ok=True)
        return True

    def kill(self, name: str) -> bool:
        """Stops `name` at once (SIGKILL), as a failure would: requests in flight get no answer."""
        pid = self.pid(name)
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.01)
        self.pid_file(name).unlink(missing_ok=True)
        return True

    def wait_until(self, name: str, url: str, timeout_seconds: float = 60) -> None:
        """Returns once `url` answers below 500; StartFailed if `name` dies or time runs out."""
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self.pid(name) is None:
                raise StartFailed(f"{name} exited while starting. {self.output_of_this_start(name)}")
            if http_status(url) in range(200, 500):
                return
            time.sleep(0.2)
        raise StartFailed(
            f"{name} did not answer at {url} within {timeout_seconds:.0f} s. "
            f"{self.output_of_this_start(name)}"
        )

    def output_of_this_start(self, name: str) -> str:
        """What `name` wrote to its log since this object started it (its last lines), and the log's path."""
        return log_since(self.log_file(name), self._log_starts.get(name, 0))


def log_since(log: Path, offset: int, lines: int = SHOWN_LOG_LINES) -> str:
    """The last `lines` lines `log` gained after `offset`, introduced by where they come from."""
    try:
        with log.open("rb") as file:
            file.seek(offset)
            written = file.read().decode(errors="replace").splitlines()
    except OSError:
        written = []
    if not written:
        return f"It wrote nothing to {log}."
    shown = written[-lines:]
    which = "It wrote" if len(shown) == len(written) else f"The last {len(shown)} lines it wrote"
    return f"{which} to {log}:\n" + "\n".join(shown)


def http_status(url: str, timeout_seconds: float = 1) -> int | None:
    """The HTTP status `url` answers with, or None if nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_seconds) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (OSError, ValueError):
        return None


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    # A child of ours that exited stays in the table until reaped; it is not running.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return False
