"""`python -m tools.blast_radius`: read a cloud assembly, print the report, exit 1 on any violation.

    python -m tools.blast_radius [--cdk-out DIR] [--format text|markdown|json] [--required-read-capacity N]

Exit status: 0 when every scenario keeps the required read capacity, writes survive any single
region's loss and no principle is violated; 1 otherwise; 2 when the input cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from stacks.config import ConfigError, load_config
from tools.blast_radius.model import build_model
from tools.blast_radius.report import FORMATS, render
from tools.blast_radius.scenarios import evaluate
from tools.local_aws.assembly import AssemblyError, read_assembly

PROJECT = Path(__file__).resolve().parents[2]
# The templates do not carry the required capacity (only MinSize, which is derived from it).
CONTEXT_SOURCE = (
    "readCapacityPerRegion from the project's cdk.json and cdk.context.json; no template carries it"
)


def project_read_capacity(project: Path = PROJECT) -> int:
    """DeploymentConfig.required_read_capacity from the committed context, as `cdk synth` sees it."""
    context = dict(json.loads((project / "cdk.json").read_text()).get("context", {}))
    context.update(json.loads((project / "cdk.context.json").read_text()))
    return load_config(context.get).required_read_capacity


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of hosts, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 host, not {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.blast_radius",
        description="Static failure-isolation report over a synthesized cloud assembly.",
    )
    parser.add_argument(
        "--cdk-out", type=Path, default=Path("cdk.out"), metavar="DIR", help="cloud assembly directory"
    )
    parser.add_argument("--format", choices=FORMATS, default="text")
    parser.add_argument(
        "--required-read-capacity",
        type=_positive,
        metavar="N",
        help="serving hosts each region needs (default: the project's readCapacityPerRegion)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as stop:  # --help or a usage error, already printed
        return int(stop.code or 0)
    try:
        model = build_model(read_assembly(args.cdk_out))
    except AssemblyError as error:
        print(f"blast-radius: {error}", file=sys.stderr)
        return 2
    if args.required_read_capacity is not None:
        required, source = args.required_read_capacity, "--required-read-capacity"
    else:
        try:
            required, source = project_read_capacity(), CONTEXT_SOURCE
        except (OSError, ValueError, ConfigError) as error:
            print(
                f"blast-radius: cannot read readCapacityPerRegion from the project context ({error}); "
                "pass --required-read-capacity N.",
                file=sys.stderr,
            )
            return 2
    report = evaluate(model, required=required, required_source=source, assembly=str(args.cdk_out))
    print(render(report, args.format))
    return report.exit_status
