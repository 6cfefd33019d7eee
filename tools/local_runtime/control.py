"""The local stage's commands: deploy, stop, reset, token, region-down, region-up, status.

python -m tools.local_runtime deploy | stop | reset | token USER | region-down REGION | region-up REGION
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3

from aviary import naming, validation
from aviary.clients import AWS_CONFIG
from aviary.handles import Handles
from aviary.schema import SOCIAL_GRAPH, SOURCE_OF_TRUTH_TABLES
from aviary.timeline_repair import RepairResult
from stacks.names import stack_name
from tools.local_aws.event_sources import Checkpoints, records_after
from tools.local_runtime import identity, timeline_repairs
from tools.local_runtime.cloudformation_gaps import apply_bucket_notifications, apply_bucket_versioning
from tools.local_runtime.deployment import read_deployment
from tools.local_runtime.dynamodb_local import create_tables
from tools.local_runtime.processes import LocalProcesses, StartFailed, http_status, log_since, port_in_use
from tools.local_runtime.settings import LOCAL_CONTEXT, PROJECT, LocalSettings
from tools.progress import Progress, duration

MOTO = "moto"
DYNAMODB = "dynamodb-local"
EMULATORS = (MOTO, DYNAMODB)
REPLICATION = "replication"
FRONT_DOOR = "front-door"
CDK_TIMEOUT_SECONDS = 900
NOT_RUNNING = "The local stage is not running; run make deploy-local first."
# What make region-up found.
REGION_BACK, REGION_RESTARTED, REGION_ALREADY_UP = "back", "restarted", "already up"


class LocalStageError(RuntimeError):
    """A step of the local stage failed; the message says which and where to look."""


def region_process(region: str) -> str:
    return f"region-{region}"


class LocalStage:
    def __init__(self, settings: LocalSettings) -> None:
        self.settings = settings
        self.processes = LocalProcesses(settings.state_dir)
        self._clients: dict[tuple[str, str | None], Any] = {}

    def client(self, service: str, region: str | None = None) -> Any:
        """A client of the emulator's `service` in `region` (DynamoDB Local for DynamoDB and its
        streams, moto for the rest), built once per stage (settle asks often)."""
        if (service, region) not in self._clients:
            self._clients[(service, region)] = self._new_client(service, region)
        return self._clients[(service, region)]

    def _new_client(self, service: str, region: str | None) -> Any:
        environment = self.settings.aws_environment(region)
        return boto3.client(
            service,
            region_name=environment["AWS_DEFAULT_REGION"],
            endpoint_url=self.settings.endpoint_for(service),
            aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
            config=AWS_CONFIG,
        )

    # -- deploy ---------------------------------------------------------------------------------

    def deploy(self, progress: Progress | None = None) -> None:
        """Emulators up (if not already), the stacks deployed, the runtime (re)started and answering;
        one progress line per step, with the time it took."""
        progress = progress or Progress()
        started = progress.clock()
        restarting = any(self.processes.pid(name) is not None for name in self.runtime_processes())
        if restarting:
            with progress.step("Stopping the runtime of the last deploy"):
                self.stop_runtime()
        if self.emulators_running():
            progress.note(
                f"The local AWS is already running (moto {self.settings.endpoint}, DynamoDB Local "
                f"{self.settings.dynamodb_endpoint}); deploying into it, its state kept."
            )
        else:
            with progress.step(
                f"Starting the local AWS: moto on port {self.settings.moto_port}, "
                f"DynamoDB Local on port {self.settings.dynamodb_port}"
            ):
                self.start_emulators()
                self.forget_runtime_state()
        for region in self.settings.regions:
            self.settings.down_marker(region).unlink(missing_ok=True)
        # One region at a time: given several, the CLI bootstraps them at once, and moto's
        # CloudFormation then sometimes names a bucket after the other region (BucketAlreadyExists).
        # Into the stage's own cloud assembly: a cdk.out shared with another CLI would be locked.
        for region in self.settings.regions:
            with progress.step(f"cdk bootstrap {region}: the CDK's staging bucket and roles in moto"):
                self.cdk(
                    "bootstrap", f"aws://{self.settings.config.account}/{region}", "-o", str(self.cdk_out)
                )
        with progress.step("cdk deploy --all: synthesize the local stage, deploy its stacks into moto"):
            self.cdk(
                "deploy", "--all", "--method=direct", "--require-approval", "never", "-o", str(self.cdk_out)
            )
        with progress.step("Creating the deployed tables in DynamoDB Local; bucket settings moto left out"):
            self.complete_data_stacks()
        with progress.step("Creating the user pool; publishing token settings to every region"):
            location = self.create_identity()
        progress.note(f"User pool {location['userPoolId']} (app client {location['clientId']}).")
        with progress.step(
            "Starting the runtime: each region's API and timeline host, replication, front door"
        ):
            self.start_runtime()
        progress.note(f"Deployed in {duration(progress.clock() - started)}.")

    def emulators_running(self) -> bool:
        return all(self.processes.pid(name) is not None for name in EMULATORS)

    def complete_data_stacks(self) -> None:
        """What moto's CloudFormation does not do for the data stacks: their tables in DynamoDB Local,
        and their buckets' versioning and notifications."""
        for region in self.settings.regions:
            stack = stack_name("Data", region)
            template = self.cdk_out / f"{stack}.template.json"
            cloudformation = self.client("cloudformation", region)
            create_tables(template, stack, cloudformation, self.client("dynamodb", region))
            apply_bucket_versioning(template, stack, cloudformation, self.client("s3", region))
            apply_bucket_notifications(
                template, stack, cloudformation, self.client("sqs", region), self.client("s3", region)
            )

    def create_identity(self) -> dict[str, str]:
        """The user pool (moto's CloudFormation cannot create one) and every region's token settings;
        returns where the pool is."""
        location = identity.ensure_user_pool(
            self.settings, self.client("cognito-idp", self.settings.primary_region), self.client("ssm")
        )
        identity.publish_token_settings(self.settings, lambda region: self.client("ssm", region))
        return location

    @property
    def cdk_out(self) -> Path:
        return self.settings.state_dir / "cdk.out"

    def cdk(self, *arguments: str) -> None:
        context = [arg for key, value in LOCAL_CONTEXT.items() for arg in ("-c", f"{key}={value}")]
        log = self.processes.log_file("cdk")
        log.parent.mkdir(parents=True, exist_ok=True)
        venv_bin = Path(sys.executable).parent
        environment = {
            **os.environ,
            **self.settings.aws_environment(),
            "PATH": os.pathsep.join(
                [str(venv_bin), str(PROJECT / "node_modules" / ".bin"), os.environ["PATH"]]
            ),
            "CDK_DISABLE_CLI_TELEMETRY": "true",
        }
        with log.open("a") as output:
            start = output.tell()
            output.write(f"\n$ cdk {' '.join(arguments)}\n")
            output.flush()
            result = subprocess.run(
                ["cdk", *arguments, "--no-notices", *context],
                cwd=PROJECT,
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=CDK_TIMEOUT_SECONDS,
            )
        if result.returncode != 0:
            # Only this command's output: the log also holds every earlier deploy's.
            raise LocalStageError(
                f"cdk {arguments[0]} failed (exit {result.returncode}). {log_since(log, start)}"
            )

    def start_emulators(self) -> None:
        """Starts moto and DynamoDB Local, both empty, stopping whichever of ours still runs.

        Both keep their state in memory and describe one AWS together, so one never outlives the other.
        """
        for name in EMULATORS:
            self.processes.stop(name)
        for port in (self.settings.moto_port, self.settings.dynamodb_port):
            if port_in_use(self.settings.host, port):
                raise LocalStageError(
                    f"Port {port} is taken by a process this project did not start; stop it first."
                )
        self.processes.start(
            MOTO,
            "tools.local_aws.moto_server",
            "-H",
            self.settings.host,
            "-p",
            str(self.settings.moto_port),
            environment={},
        )
        self.processes.start(
            DYNAMODB,
            "tools.local_runtime.dynamodb_local",
            "-H",
            self.settings.host,
            "-p",
            str(self.settings.dynamodb_port),
            environment={},
        )
        self.processes.wait_until(MOTO, f"{self.settings.endpoint}/moto-api/data.json")
        self.processes.wait_until(DYNAMODB, f"{self.settings.dynamodb_endpoint}/")

    def forget_runtime_state(self) -> None:
        """Stream positions, replication state and host caches belong to the emulator they came from."""
        for region in self.settings.regions:
            shutil.rmtree(self.settings.state_dir / region, ignore_errors=True)
        for name in ("replication.sqlite", "replication.sqlite-wal", "replication.sqlite-shm",
                     "replication-checkpoints.json", "replication-status.json"):  # fmt: skip
            (self.settings.state_dir / name).unlink(missing_ok=True)

    # -- runtime --------------------------------------------------------------------------------

    def start_runtime(self) -> None:
        for region in self.settings.regions:
            if not self.settings.is_down(region):
                self.start_region(region)
        self.processes.start(
            REPLICATION, "tools.local_runtime.replication", environment=self.settings.runtime_environment()
        )
        self.processes.start(
            FRONT_DOOR, "tools.local_runtime.front_door", environment=self.settings.runtime_environment()
        )
        self.processes.wait_until(FRONT_DOOR, f"{self.settings.front_door_url}/frontdoor/status")
        self.wait_for_front_door()

    def start_region(self, region: str) -> None:
        name = region_process(region)
        self.processes.start(
            name, "tools.local_runtime.region", region, environment=self.settings.runtime_environment(region)
        )
        self.processes.wait_until(name, f"{self.settings.api_url(region)}/health")

    def wait_for_front_door(self, timeout_seconds: float = 30) -> dict[str, Any]:
        """The front door's status once it routes to the first region that is up."""
        expected = next((r for r in self.settings.regions if not self.settings.is_down(r)), None)
        deadline = time.monotonic() + timeout_seconds
        while True:
            status = self.front_door_status()
            if status and status["active_region"] == expected:
                return status
            if time.monotonic() > deadline:
                raise StartFailed(f"the front door did not route to {expected} in {timeout_seconds:.0f} s")
            time.sleep(0.2)

    def front_door_status(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(
                f"{self.settings.front_door_url}/frontdoor/status", timeout=2
            ) as response:
                return json.load(response)
        except OSError:
            return None

    def runtime_processes(self) -> list[str]:
        return [FRONT_DOOR, REPLICATION, *(region_process(r) for r in self.settings.regions)]

    def stop_runtime(self) -> list[str]:
        return [name for name in self.runtime_processes() if self.processes.stop(name)]

    def stop(self) -> list[str]:
        stopped = self.stop_runtime()
        return stopped + [name for name in EMULATORS if self.processes.stop(name)]

    def reset(self) -> list[str]:
        """Stops everything and wipes the emulator's state (moto keeps it in memory) and ours."""
        stopped = self.stop()
        shutil.rmtree(self.settings.state_dir, ignore_errors=True)
        return stopped

    # -- regions --------------------------------------------------------------------------------

    def region_down(self, region: str) -> bool:
        """The region's API, timeline host, event sources and replication become unavailable at once:
        requests in flight there get no answer, even those whose writes landed (as in a real failure).
        False if it was down already."""
        self._known(region)
        if self.settings.is_down(region):
            return False
        marker = self.settings.down_marker(region)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(str(time.time()))
        self.processes.kill(region_process(region))
        return True

    def region_up(self, region: str) -> str:
        """Brings the region back; says what that took: REGION_BACK (it was down), REGION_RESTARTED (it
        was not down, but its process had exited) or REGION_ALREADY_UP (nothing to do)."""
        self._known(region)
        was_down = self.settings.is_down(region)
        self.settings.down_marker(region).unlink(missing_ok=True)
        if self.processes.pid(region_process(region)) is not None:
            return REGION_ALREADY_UP
        self.start_region(region)
        # Back means routed to again: the front door takes its failure threshold of passed checks
        # (as Route 53 does) before the first region in order serves once more.
        self.wait_for_front_door()
        return REGION_BACK if was_down else REGION_RESTARTED

    def _known(self, region: str) -> None:
        if region not in self.settings.regions:
            raise LocalStageError(
                f"REGION must be one of the configured regions ({', '.join(self.settings.regions)}), "
                f"not {region!r}."
            )
        self.check_running()

    def not_running(self) -> list[str]:
        """The stage's processes that should be running and are not (a region taken down by
        `make region-down` is not expected to run)."""
        expected = [*EMULATORS, *self.runtime_processes()]
        down = {region_process(r) for r in self.settings.regions if self.settings.is_down(r)}
        return [name for name in expected if name not in down and self.processes.pid(name) is None]

    def check_running(self, *, runtime: bool = False) -> None:
        """Refuses to go on against a stopped stage, in words rather than a connection error; with
        `runtime`, the runtime's processes must run too (settle waits on them)."""
        missing = self.not_running()
        if all(name in missing for name in EMULATORS):
            raise LocalStageError(NOT_RUNNING)
        if not runtime:
            missing = [name for name in missing if name in EMULATORS]
        if missing:
            raise LocalStageError(
                f"The local stage is only partly running ({', '.join(missing)} not); "
                f"run make deploy-local to start it again (logs in {self.processes.log_dir})."
            )

    # -- catching up ----------------------------------------------------------------------------

    def lagging(self) -> list[str]:
        """What has not caught up yet (empty when everything has): fan-out, replication, media."""
        behind = []
        up = [r for r in self.settings.regions if not self.settings.is_down(r)]
        replication = Checkpoints(self.settings.state_dir / "replication-checkpoints.json")
        for region in up:
            dynamodb, streams = self.client("dynamodb", region), self.client("dynamodbstreams", region)
            stream_of = {
                schema.role: dynamodb.describe_table(TableName=naming.table_name(schema))["Table"][
                    "LatestStreamArn"
                ]
                for schema in SOURCE_OF_TRUTH_TABLES
            }
            behind += timeline_repairs.consumers_behind(region, self.settings.state_dir, self.client)
            for schema in SOURCE_OF_TRUTH_TABLES:
                table = naming.table_name(schema)
                if records_after(
                    streams, stream_of[schema.role], replication.get(f"{region}/{table}"), limit=1
                ):
                    behind.append(f"{region} {table} replication")
            sqs = self.client("sqs", region)
            for url in sqs.list_queues(QueueNamePrefix=stack_name("Data", region)).get("QueueUrls", []):
                if "MediaUploads" not in url:
                    continue
                attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
                if int(attributes["ApproximateNumberOfMessages"]) + int(
                    attributes["ApproximateNumberOfMessagesNotVisible"]
                ):
                    behind.append(f"{region} media uploads")
        status = self.replication_status() or {}
        for region, owed in status.get("outbox", {}).items():
            if region in up and owed:
                behind.append(f"{owed} items owed to {region}")
        # Repairs wait for every region to be back: while one is down they are owed, not late.
        if status.get("timeline_repairs_owed") and len(up) == len(self.settings.regions):
            behind.append(f"{status['timeline_repairs_owed']} timeline repairs owed after a region failure")
        return behind

    def source_items(self, region: str) -> dict[str, dict[str, str]]:
        """Every item of `region`'s source tables, as canonical JSON by table and key."""
        dynamodb = self.client("dynamodb", region)
        contents: dict[str, dict[str, str]] = {}
        for schema in SOURCE_OF_TRUTH_TABLES:
            table = naming.table_name(schema)
            keys = [key.name for key in (schema.partition_key, schema.sort_key) if key is not None]
            contents[table] = {
                json.dumps([item[name] for name in keys], sort_keys=True): json.dumps(item, sort_keys=True)
                for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
                for item in page["Items"]
            }
        return contents

    def differences(self, regions: list[str] | None = None) -> list[str]:
        """The source items that are not the same in every one of `regions` (default: those up),
        each as "table key: held by ..."; empty when the regions agree item for item."""
        regions = regions or [r for r in self.settings.regions if not self.settings.is_down(r)]
        contents = {region: self.source_items(region) for region in regions}
        differing = []
        for schema in SOURCE_OF_TRUTH_TABLES:
            table = naming.table_name(schema)
            keys = sorted({key for region in regions for key in contents[region][table]})
            for key in keys:
                versions = {region: contents[region][table].get(key) for region in regions}
                if len(set(versions.values())) > 1:
                    held = ", ".join(r for r, v in versions.items() if v is not None) or "none"
                    differing.append(f"{table} {key}: {len(set(versions.values()))} versions, held by {held}")
        return differing

    def timeline_entries(self, region: str) -> dict[str, dict[str, str]]:
        """Each user's newest timeline entries in `region` (up to the cap, expired ones left out), as
        canonical JSON by entry key: what every region should hold alike once settled. Entries past
        the cap are left to the sampled trim and differ by when it ran, so they are not compared."""
        table = read_deployment(region, self.client("lambda", region)).timeline_settings().timelines_table
        now = time.time()
        by_user: dict[str, dict[str, str]] = {}
        for page in (
            self.client("dynamodb", region)
            .get_paginator("scan")
            .paginate(TableName=table, ConsistentRead=True)
        ):
            for item in page["Items"]:
                if int(item.get("expires_at", {}).get("N", "0")) > now:
                    entries = by_user.setdefault(item["user_id"]["S"], {})
                    entries[item["entry_key"]["S"]] = json.dumps(item, sort_keys=True)
        cap = self.settings.config.timeline_max_entries
        return {
            user: {key: entries[key] for key in sorted(entries, reverse=True)[:cap]}
            for user, entries in by_user.items()
        }

    def timeline_differences(self, regions: list[str] | None = None) -> list[str]:
        """The timeline entries not the same in every one of `regions` (default: those up), each as
        "user entry key: held by ..."; empty when every user's timeline is alike everywhere."""
        regions = regions or [r for r in self.settings.regions if not self.settings.is_down(r)]
        held = {region: self.timeline_entries(region) for region in regions}
        differing = []
        for user in sorted({user for entries in held.values() for user in entries}):
            keys = sorted({key for entries in held.values() for key in entries.get(user, {})})
            for key in keys:
                versions = {region: held[region].get(user, {}).get(key) for region in regions}
                if len(set(versions.values())) > 1:
                    holders = ", ".join(r for r, v in versions.items() if v is not None) or "none"
                    differing.append(
                        f"{user} {key}: {len(set(versions.values()))} versions, held by {holders}"
                    )
        return differing

    def replication_status(self) -> dict[str, Any] | None:
        path = self.settings.state_dir / "replication-status.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def settle(self, timeout_seconds: float = 300) -> float:
        """Waits until every region that is up has caught up (twice in a row, and after a full
        replication cycle that began after we started looking) and the regions that are up hold the
        same source items; returns the seconds it took."""
        self.check_running(runtime=True)
        started = time.time()
        confirmed = 0
        while True:
            status = self.replication_status() or {}
            cycle_after_start = status.get("at", 0) > started
            behind = self.lagging()
            confirmed = confirmed + 1 if not behind and cycle_after_start else 0
            if confirmed >= 2:
                differing = self.differences()
                if not differing:
                    return time.time() - started
                # Caught up by every measure the runtime keeps, yet the regions differ: wait on, and
                # say so if it lasts (replication has lost or garbled something).
                behind, confirmed = [f"{len(differing)} source items to agree, e.g. {differing[0]}"], 0
            if time.time() - started > timeout_seconds:
                waiting_for = ", ".join(behind) or "a replication cycle"
                raise LocalStageError(
                    f"Not caught up after {timeout_seconds:.0f} s, still waiting for {waiting_for}; "
                    f"see the logs in {self.processes.log_dir}."
                )
            time.sleep(0.2)

    # -- users ----------------------------------------------------------------------------------

    def token(self, username: str) -> str:
        """An ID token for a demo user, signed up on first use; their handle is claimed at sign-in, so
        others can follow them before they have made a request. The production pool matches
        usernames case-insensitively and moto's does not, so the name is lower-cased here."""
        self.check_running()
        username = validation.handle(username, field="USER")
        location = identity.user_pool_location(self.client("ssm"))
        token = identity.id_token(self.client("cognito-idp", location["region"]), location, username)
        # Claimed where the front door would send the user's first request: the first region up.
        serving = next(r for r in self.settings.regions if not self.settings.is_down(r))
        graph = naming.table_name(SOCIAL_GRAPH)
        identity.claim_handle(Handles(self.client("dynamodb", serving), graph), token)
        return token

    def repair(self, username: str) -> list[tuple[str, RepairResult]]:
        """Repairs the timeline of the user holding `username`'s handle in every region that is up."""
        self._running()
        handle = validation.handle(username, field="USER")
        up = [r for r in self.settings.regions if not self.settings.is_down(r)]
        graph = Handles(self.client("dynamodb", up[0]), naming.table_name(SOCIAL_GRAPH))
        user = graph.user_id_of(handle, field="USER")
        return [
            (region, result)
            for region in up
            for result in timeline_repairs.repair(region, [user], self.client)
        ]

    def endpoints(self) -> list[str]:
        lines = [f"front door (failover)  {self.settings.front_door_url}"]
        for region in self.settings.regions:
            state = "DOWN" if self.settings.is_down(region) else "up"
            health = http_status(f"{self.settings.api_url(region)}/health")
            lines.append(
                f"{region:<22} {self.settings.api_url(region)}  ({state}, health {health or 'no answer'})"
            )
        lines.append(f"moto (AWS emulator)    {self.settings.endpoint}")
        lines.append(f"DynamoDB Local         {self.settings.dynamodb_endpoint}")
        return lines
