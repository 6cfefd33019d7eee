"""Runs a drill once per test session, whichever pytest-xdist worker asks first."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from tools.drills.result import DrillResult


def once_per_session(result_file: Path, run: Callable[[], DrillResult]) -> DrillResult:
    """The drill's result: run by the first worker and saved, read back by the others."""
    with FileLock(f"{result_file}.lock"):
        if result_file.exists():
            return DrillResult(**json.loads(result_file.read_text()))
        result = run()
        result_file.write_text(json.dumps(dataclasses.asdict(result)))
        return result
