"""`make drill`: every failure drill, then one summary table; exits 1 if any drill lost or doubled work.

    python -m tools.drills [--tweets 10000] [--only az host fault region]

The AZ and host drills deploy the synthesized `local` templates into in-process moto; the fault
drill drives the real handlers through injected faults; the region drill deploys a local stage of
its own (own ports and state directory, so a running `make deploy-local` is left alone), takes
the primary region down mid-stream and tears the stage down afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tools.drills.result import DrillResult

# The region drill's own local stage.
DRILL_STAGE = {
    "AVIARY_LOCAL_MOTO_PORT": "5320",
    "AVIARY_LOCAL_DYNAMODB_PORT": "5321",
    "AVIARY_LOCAL_FRONT_DOOR_PORT": "8320",
    "AVIARY_LOCAL_FIRST_API_PORT": "8321",
}
DRILLS = ("az", "host", "fault", "region")
# Every user's timeline compared between the regions once the region drill has settled.
DIVERGENT = "divergent timeline entries between regions"


def synthesized_local_stage(out_dir: Path) -> Path:
    from tools.local_runtime.control import LocalStage
    from tools.local_runtime.settings import load_local_settings

    LocalStage(load_local_settings()).cdk("synth", "--quiet", "-o", str(out_dir))
    return out_dir


def region_drill(work: Path) -> DrillResult:
    from tools.drills import region_drill as drill
    from tools.local_runtime.control import LocalStage
    from tools.local_runtime.settings import load_local_settings
    from tools.progress import Progress

    os.environ.update({**DRILL_STAGE, "AVIARY_LOCAL_STATE_DIR": str(work / "local-stage")})
    stage = LocalStage(load_local_settings())
    try:
        stage.deploy(Progress(write=lambda _text: None))
        return drill.run(stage)
    finally:
        stage.reset()


def table(results: list[DrillResult]) -> str:
    header = ("scenario", "injected", "survived", "lost", "duplicated", "time")
    rows = [
        (r.scenario, r.injected, str(r.survived), str(r.lost), str(r.duplicated), f"{r.seconds:.1f} s")
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.drills")
    parser.add_argument("--tweets", type=int, default=10_000, help="tweet events in the fault drill")
    parser.add_argument("--only", nargs="+", choices=DRILLS, default=list(DRILLS))
    args = parser.parse_args(argv)

    from stacks.config import load_config, project_context
    from tools.local_runtime.settings import LOCAL_CONTEXT, PROJECT

    config = load_config(project_context(PROJECT, LOCAL_CONTEXT).get)
    results: list[DrillResult] = []
    with tempfile.TemporaryDirectory(prefix="aviary-drills-") as scratch:
        work = Path(scratch)
        cdk_out: Path | None = None

        def local_templates() -> Path:
            nonlocal cdk_out
            cdk_out = cdk_out or synthesized_local_stage(work / "cdk.out")
            return cdk_out

        drills: dict[str, Callable[[], DrillResult]] = {
            "az": lambda: _az(local_templates(), config, work),
            "host": lambda: _host(local_templates(), config, work),
            "fault": lambda: _fault(args.tweets),
            "region": lambda: region_drill(work),
        }
        for name in args.only:
            started = time.monotonic()
            print(f"drill {name} ...", flush=True)
            results.append(drills[name]())
            print(f"drill {name} done in {time.monotonic() - started:.1f} s", flush=True)

    print()
    print(table(results))
    divergent = [r.details[DIVERGENT] for r in results if DIVERGENT in r.details]
    if divergent:
        print(f"\n{DIVERGENT} after the drills: {sum(int(n) for n in divergent)} (goal 0)")
    for result in results:
        print(f"\n{result.scenario}:")
        for key, value in result.details.items():
            print(f"  {key}: {value}")
    failed = [r.scenario for r in results if not r.passed]
    print(
        "\nResult: "
        + ("FAIL: " + "; ".join(failed) if failed else "every drill lost nothing and doubled nothing")
    )
    return 1 if failed else 0


def _az(cdk_out: Path, config, work: Path) -> DrillResult:
    from tools.drills import az_drill

    return az_drill.run(cdk_out, config, work_dir=work / "az")


def _host(cdk_out: Path, config, work: Path) -> DrillResult:
    from tools.drills import host_drill

    return host_drill.run(cdk_out, config, work_dir=work / "host")


def _fault(tweets: int) -> DrillResult:
    from tools.drills import fault_drill

    return fault_drill.run(tweets)


if __name__ == "__main__":
    sys.exit(main())
