"""Progress lines for the slow steps of set-up and deploy: what a step does, then how long it took.

    Installing the pinned Python packages into .venv/ (pip) ... 1 min 22 s

The Makefile runs it as `python3 -m tools.progress "what" -- command ...` with the machine's Python,
before the venv exists, so it uses the standard library only. The command's own output is held back
and shown only if it fails (the steps are quiet when they work), so each step stays one line. The
local stage's deploy prints its steps through Progress.step the same way.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator


def duration(seconds: float) -> str:
    """'4.2 s' under a minute, '2 min 18 s' from there on."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"


def _stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()  # the line's start must show while the step runs, not after


class Progress:
    """Writes one line per step; `write` takes text without an implied newline."""

    def __init__(
        self, write: Callable[[str], None] = _stdout, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.write = write
        self.clock = clock

    @contextlib.contextmanager
    def step(self, what: str) -> Iterator[None]:
        """'what ... ' at once, then the time it took (or that it failed) when the block ends."""
        self.write(f"{what} ... ")
        started = self.clock()
        try:
            yield
        except BaseException:
            self.write(f"failed after {duration(self.clock() - started)}\n")
            raise
        self.write(f"{duration(self.clock() - started)}\n")

    def note(self, line: str) -> None:
        """A line that is not a timed step (a step skipped, say, and why)."""
        self.write(f"{line}\n")


def main(argv: list[str]) -> int:
    """`"what" -- command ...`: runs the command as one step; its exit status is this one's."""
    if len(argv) < 3 or argv[1] != "--":
        print('usage: python3 -m tools.progress "what it does" -- command [argument ...]', file=sys.stderr)
        return 2
    what, command = argv[0], argv[2:]
    try:
        with Progress().step(what):
            result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
            if result.returncode != 0:
                raise subprocess.CalledProcessError(result.returncode, command, result.stdout)
    except subprocess.CalledProcessError as failed:
        sys.stdout.buffer.write(failed.output or b"")
        print(f"{' '.join(command)} exited with status {failed.returncode}.", file=sys.stderr)
        return failed.returncode
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
