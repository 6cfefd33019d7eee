"""Command line of the local stage (the Makefile's deploy-local, stop-local, reset-local, token,
repair-local, region-down and region-up targets call it)."""

from __future__ import annotations

import argparse
import contextlib
import sys

import botocore.exceptions

from aviary.errors import ValidationError
from tools.local_runtime.control import (
    REGION_ALREADY_UP,
    REGION_BACK,
    REGION_RESTARTED,
    LocalStage,
    LocalStageError,
)
from tools.local_runtime.lock import StageBusy, StageLock
from tools.local_runtime.processes import StartFailed
from tools.local_runtime.settings import LocalSettings, load_local_settings

NOT_RUNNING_HINT = "make status-local says what is running, make deploy-local starts it again."

# The commands that change the stage, by the make target a person runs: one at a time per stage.
CHANGING_COMMANDS = {
    "deploy": "make deploy-local",
    "stop": "make stop-local",
    "reset": "make reset-local",
    "region-down": "make region-down",
    "region-up": "make region-up",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.local_runtime")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("deploy", help="start moto, deploy the local stage, start the runtime")
    commands.add_parser("stop", help="stop everything deploy started")
    commands.add_parser("reset", help="stop, and wipe the emulator's and the runtime's state")
    commands.add_parser("status", help="print the endpoints and whether each region is up")
    commands.add_parser("settle", help="wait until fan-out, replication and media have caught up")
    token = commands.add_parser("token", help="print an ID token for a demo user")
    token.add_argument("user")
    repair = commands.add_parser("repair", help="recompute a user's timeline in every region that is up")
    repair.add_argument("user")
    for name in ("region-down", "region-up"):
        commands.add_parser(name).add_argument("region")
    args = parser.parse_args(argv)

    try:
        stage = LocalStage(load_local_settings())
        with contextlib.ExitStack() as held:
            if args.command in CHANGING_COMMANDS:
                held.enter_context(StageLock(stage.settings.state_dir, CHANGING_COMMANDS[args.command]))
            run(stage, args)
    except (LocalStageError, StartFailed, StageBusy, ValueError) as error:
        print(f"aviary local: {error}", file=sys.stderr)
        return 1
    except (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError) as error:
        # A process of the stage died or stopped answering while this command ran.
        print(f"aviary local: the local AWS did not answer ({error}); {NOT_RUNNING_HINT}", file=sys.stderr)
        return 1
    except ValidationError as error:
        print(f"aviary local: {error.message}", file=sys.stderr)
        return 2
    return 0


def run(stage: LocalStage, args: argparse.Namespace) -> None:
    """Runs one command and prints what a person needs to know about it."""
    if args.command == "deploy":
        stage.deploy()
        print("\nAviary is running locally:")
        print("\n".join(stage.endpoints()))
        print(next_steps(stage.settings))
    elif args.command == "stop":
        print("Stopped: " + (", ".join(stage.stop()) or "nothing was running"))
    elif args.command == "reset":
        print("Stopped: " + (", ".join(stage.reset()) or "nothing was running") + "; state wiped.")
    elif args.command == "status":
        # Endpoints only once something answers on them; a stopped stage is an error, as for settle.
        stage.check_running(runtime=False)
        print("\n".join(stage.endpoints()))
        stage.check_running(runtime=True)
    elif args.command == "settle":
        seconds = stage.settle()
        status = stage.replication_status() or {}
        lag = status.get("lag_seconds", {})
        print(
            f"Caught up in {seconds:.2f} s (replication lag: median {_seconds(lag.get('median'))}, "
            f"max {_seconds(lag.get('max'))} over {lag.get('samples', 0)} items)."
        )
    elif args.command == "token":
        # Last line: the token alone, so `$(make -s token USER=alice | tail -1)` captures it.
        print(stage.token(args.user))
    elif args.command == "repair":
        for region, result in stage.repair(args.user):
            print(
                f"{region}: {args.user}'s timeline should hold {result.expected} entries; "
                f"{result.written} written, {result.deleted} deleted, {result.calls} DynamoDB calls."
            )
    elif args.command == "region-down":
        if stage.region_down(args.region):
            print(
                f"{args.region} is down: its API, timeline host, event sources and replication are stopped."
            )
        else:
            print(f"{args.region} was already down; make region-up REGION={args.region} brings it back.")
    elif args.command == "region-up":
        print(
            {
                REGION_BACK: f"{args.region} is up again; replication is catching it up "
                "(make settle-local waits until it has).",
                REGION_RESTARTED: f"{args.region} was not down, but its process had exited; started again.",
                REGION_ALREADY_UP: f"{args.region} was already up; nothing to do.",
            }[stage.region_up(args.region)]
        )


def next_steps(settings: LocalSettings) -> str:
    """What to do once the stage is up: the walk-through's first commands, and how to stop."""
    return (
        '\nNext (the walk-through in README.md, "Try it locally", goes on from here):\n'
        "  ALICE=$(make -s token USER=alice | tail -1)      # an ID token, valid for an hour\n"
        f'  curl -s -H "Authorization: Bearer $ALICE" {settings.front_door_url}/timeline; echo\n'
        "When you are done: make stop-local (make reset-local also wipes the stage's state)."
    )


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


if __name__ == "__main__":
    sys.exit(main())
