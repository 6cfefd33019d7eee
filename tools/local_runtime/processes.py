"""Background processes of the local stage: started with a pid file and a log in .local/, stopped by pid."""

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


class LocalProcesses:
    def __init__(self, state_dir: Path) -> None:
        self.pid_dir = state_dir / "pids"
        self.log_dir = state_dir / "logs"

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
                raise StartFailed(f"{name} exited while starting; see {self.log_file(name)}")
            if http_status(url) in range(200, 500):
                return
            time.sleep(0.2)
        raise StartFailed(
            f"{name} did not answer at {url} within {timeout_seconds:.0f} s; see {self.log_file(name)}"
        )


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
