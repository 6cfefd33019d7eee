"""`make load`: deploys a local stage of its own, runs the mixed load with a region failure in the
middle, prints the figures and the invariants, and tears the stage down. Exits 1 if an invariant broke.

    python -m tools.load [--users 20] [--duration 120] [--outage 40 80 | --no-outage]
                         [--use-running-stage] [--json FILE]

By default the stage gets its own ports and state directory, so a running `make deploy-local` is left
alone; --use-running-stage loads the stage the AVIARY_LOCAL_* variables name instead (the tests do).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from tools.load.mixed_load import LoadPlan, render, run, summary
from tools.local_runtime.control import LocalStage
from tools.local_runtime.settings import load_local_settings

LOAD_STAGE = {
    "AVIARY_LOCAL_MOTO_PORT": "5330",
    "AVIARY_LOCAL_DYNAMODB_PORT": "5331",
    "AVIARY_LOCAL_FRONT_DOOR_PORT": "8330",
    "AVIARY_LOCAL_FIRST_API_PORT": "8331",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.load")
    parser.add_argument("--users", type=int, default=20, help="concurrent clients, one account each")
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of load")
    parser.add_argument("--outage", type=float, nargs=2, metavar=("DOWN", "UP"),
                        help="seconds into the load when the primary region goes down and comes back "
                        "(default: the middle third)")  # fmt: skip
    parser.add_argument("--no-outage", action="store_true", help="no region failure")
    parser.add_argument("--use-running-stage", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    if args.users < 2 or args.duration <= 0:
        parser.error("--users must be at least 2 and --duration positive")
    outage = None if args.no_outage else tuple(args.outage or (args.duration / 3, 2 * args.duration / 3))
    plan = LoadPlan(users=args.users, duration_seconds=args.duration, outage=outage)

    if args.use_running_stage:
        report = run(LocalStage(load_local_settings()), plan)
    else:
        with tempfile.TemporaryDirectory(prefix="aviary-load-stage-") as scratch:
            os.environ.update({**LOAD_STAGE, "AVIARY_LOCAL_STATE_DIR": str(Path(scratch) / "local-stage")})
            stage = LocalStage(load_local_settings())
            try:
                print("Deploying a local stage for the load (own ports) ...", flush=True)
                stage.deploy()
                report = run(stage, plan)
            finally:
                stage.reset()
    print(render(report))
    if args.json:
        args.json.write_text(json.dumps(summary(report), indent=1))
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
