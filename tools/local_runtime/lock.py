"""One command at a time per local stage: an OS file lock on a file in its state directory.

Two `make deploy-local` runs at once would start two sets of processes on the same ports, write the
same pid files and logs and synthesize into the same cloud assembly; each then fails in a way that
points at the other's files. The lock is `flock` on `<state dir>/lock`: the operating system
releases it when its holder exits, however it exits, so a killed run never leaves it stuck.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType

LOCK_FILE = "lock"


class StageBusy(RuntimeError):
    """Another command holds the stage's lock; the message names it and its pid."""


class StageLock:
    """Held for the whole life of a command that changes the stage (deploy, stop, reset, region-down,
    region-up). Commands that only look (status, settle, token) do not take it."""

    def __init__(self, state_dir: Path, command: str) -> None:
        """`command` is what a second run is told is running, e.g. "make deploy-local"."""
        self.path = state_dir / LOCK_FILE
        self.command = command
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            # open() gives a descriptor no child process inherits, so the runtime processes a deploy
            # starts do not keep holding the lock after the deploy itself has finished.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read(fd)
                os.close(fd)
                raise StageBusy(self._busy_message(holder)) from None
            if _same_file(fd, self.path):
                break
            # `make reset-local` removed the file between our open and our lock: lock the new one.
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {time.time():.0f} {self.command}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Lets the next command in. The file stays (unless reset removed it with the directory): a
        lock file another command may already have opened must not be deleted under it."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> StageLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.release()

    def _busy_message(self, holder: str) -> str:
        """Who holds the lock, from what it wrote: "<pid> <start time> <command>"."""
        pid, since, command = [*holder.split(maxsplit=2), "", "", ""][:3]
        if not (pid.isdigit() and since.isdigit()):
            # Locked an instant ago and not written yet, or written by something else.
            return (
                f"Another command is already running on this local stage (it holds {self.path}); "
                "wait for it to finish, then run this again."
            )
        started = time.strftime("%H:%M:%S", time.localtime(int(since)))
        return (
            f"{command or 'Another command'} is already running on this local stage (pid {pid}, "
            f"started {started}); wait for it to finish (or stop it: kill {pid}), then run this again."
        )


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        return ""


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False
