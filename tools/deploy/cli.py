"""`python -m tools.deploy`: synthesize prod, run the preflight checks, then `cdk deploy` each stack in
dependency order.

    python -m tools.deploy [-c key=value ...] [--dry-run] [--require-approval any-change|broadening]

The `-c` settings are the ones `cdk synth` takes (make deploy passes ACCOUNT and CONTEXT). --dry-run
synthesizes (which calls no AWS API), then prints the checks and the exact commands, and stops.
Exit status: 0 when every stack deployed (or the dry run printed its plan); 1 when a check or a
deploy failed; 2 when the settings or the assembly cannot be used.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from stacks.config import ConfigError, DeploymentConfig, load_config, project_context
from tools.deploy.plan import deploy_command, deploy_order, shell_line
from tools.deploy.preflight import NO_AWS_CALL, Check, CheckFailed, Clients, preflight_checks, run_preflight
from tools.local_aws.assembly import AssemblyError, StackTemplate, read_assembly
from tools.progress import Progress

PROJECT = Path(__file__).resolve().parents[2]
Run = Callable[..., subprocess.CompletedProcess[Any]]


def _setting(text: str) -> tuple[str, str]:
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise argparse.ArgumentTypeError(f"a setting is key=value, not {text!r}")
    return key, value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.deploy", description="Deploy the prod stage to a real AWS account."
    )
    parser.add_argument(
        "-c", "--context", type=_setting, action="append", default=[], metavar="KEY=VALUE", help="a setting"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the checks and commands; call no AWS API"
    )
    parser.add_argument(
        "--require-approval",
        choices=("any-change", "broadening"),
        help="passed to cdk deploy (cdk's default asks before changes that broaden access)",
    )
    parser.add_argument("--cdk-out", type=Path, default=Path("cdk.out"), metavar="DIR")
    parser.add_argument(
        "--assembly",
        type=Path,
        metavar="DIR",
        help="deploy this synthesized assembly instead of synthesizing",
    )
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    clients: Clients | None = None,
    run: Run = subprocess.run,
    write: Callable[[str], None] = print,
) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as stop:  # --help or a usage error, already printed
        return int(stop.code or 0)
    settings = dict(args.context)
    try:
        config = load_config(project_context(PROJECT, settings).get)
    except ConfigError as error:
        write(f"deploy: {error}")
        return 2
    if config.is_local:
        write("deploy: the local stage is deployed by make deploy-local; make deploy is for prod.")
        return 2

    cdk_out = args.assembly or args.cdk_out
    if args.assembly is None and not synthesize(settings, cdk_out, run):
        return 2
    try:
        stacks = read_assembly(cdk_out)
    except AssemblyError as error:
        write(f"deploy: {error}")
        return 2
    foreign = sorted({stack.account for stack in stacks} - {config.account})
    if foreign:
        write(
            f"deploy: {cdk_out} was synthesized for account {', '.join(foreign)}, not {config.account}; "
            "synthesize again with the same settings."
        )
        return 2

    checks = preflight_checks(config, stacks)
    commands = [
        deploy_command(stack.name, cdk_out, args.require_approval)
        for stack in deploy_order(stacks, config.region_names)
    ]
    if args.dry_run:
        write(dry_run_plan(config, checks, commands))
        return 0

    write(f"Preflight: is account {config.account} ready for {len(commands)} stacks?")
    if not run_preflight(checks, clients or aws_clients, write):
        write("Preflight failed: nothing was deployed. Fix what it says above, then run make deploy again.")
        return 1
    return deploy(commands, stacks, run, write)


def synthesize(settings: dict[str, str], cdk_out: Path, run: Run) -> bool:
    """`cdk synth` with the same settings, its output held back unless it fails (like make synth)."""
    command = ["cdk", "synth", "--quiet", "--no-notices", *_context_arguments(settings), "-o", str(cdk_out)]
    try:
        with Progress().step(
            f"Synthesizing the prod stage into {cdk_out}/ (cdk synth, cdk-nag, rule validation)"
        ):
            result = run(command, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
            if result.returncode != 0:
                raise subprocess.CalledProcessError(result.returncode, command, result.stdout)
    except subprocess.CalledProcessError as failed:
        sys.stdout.buffer.write(failed.output or b"")
        print(f"{shell_line(command)} exited with status {failed.returncode}.", file=sys.stderr)
        return False
    return True


def dry_run_plan(config: DeploymentConfig, checks: Sequence[Check], commands: Sequence[Sequence[str]]) -> str:
    lines = [f"make deploy would check account {config.account} first (read-only calls):"]
    for index, check in enumerate(checks, start=1):
        lines.append(f"  {index}. {check.title} [{check.asks}]")
        if check.asks == NO_AWS_CALL:
            lines.append(f"     now: {_outcome(check)}")
    lines.append(
        "and then, if every check passed, run these commands in this order, each after the last succeeded:"
    )
    lines += [f"  {shell_line(command)}" for command in commands]
    lines.append("This was a dry run: no AWS API was called.")
    return "\n".join(lines)


def _outcome(check: Check) -> str:
    try:
        return f"ok, {check.run(_no_clients)}"
    except CheckFailed as failure:
        return f"FAILS: {failure}"


def _no_clients(service: str, region: str) -> Any:
    raise AssertionError(f"a check without AWS calls asked for a {service} client in {region}")


def deploy(
    commands: Sequence[Sequence[str]], stacks: Sequence[StackTemplate], run: Run, write: Callable[[str], None]
) -> int:
    """One `cdk deploy` at a time, on the terminal (cdk may ask for approval); stops at a failure."""
    for index, command in enumerate(commands, start=1):
        write(f"[{index}/{len(commands)}] {shell_line(command)}")
        result = run(list(command), cwd=PROJECT, check=False)
        if result.returncode != 0:
            done = ", ".join(shell_line(c[-1:]) for c in commands[: index - 1]) or "none"
            write(
                f"deploy: {command[-1]} failed (cdk exited with status {result.returncode}); deployed before "
                f"it: {done}. Fix the cause cdk printed and run make deploy again: stacks without changes "
                "are skipped."
            )
            return 1
    write(f"Deployed {len(stacks)} stacks.")
    return 0


def aws_clients(service: str, region: str) -> Any:
    from aviary.clients import client  # boto3 only when a real deploy asks

    return client(service, region=region)


def _context_arguments(settings: dict[str, str]) -> list[str]:
    return [argument for key, value in settings.items() for argument in ("-c", f"{key}={value}")]
