"""DynamoDB Local for the tests that need DynamoDB's own isolation, ordering or stream semantics.

One server per pytest worker, started on first use (a JVM starts in about three seconds); each test
gets a database of its own, since DynamoDB Local keeps one per access key and region.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from aviary.clients import AWS_CONFIG
from tools.local_runtime.processes import http_status

PROJECT = Path(__file__).resolve().parents[1]
START_SECONDS = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class DynamoDBLocalServer:
    """A DynamoDB Local process on a free loopback port, as the local stage runs it."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tools.local_runtime.dynamodb_local", "-p", str(self.port)],
            cwd=PROJECT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_SECONDS
        while http_status(self.endpoint) is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"DynamoDB Local did not start; see {log}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


@dataclass(frozen=True)
class DynamoDBLocal:
    """One test's own database on the shared server: clients for any region, all under its key."""

    endpoint: str
    access_key: str

    def client(self, service: str = "dynamodb", region: str = "us-east-1") -> Any:
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key="testing",
            aws_session_token=None,
            config=AWS_CONFIG,
        )


def new_database(server: DynamoDBLocalServer) -> DynamoDBLocal:
    # Access keys are letters and digits; a fresh one is an empty database.
    return DynamoDBLocal(server.endpoint, "test" + uuid.uuid4().hex[:16])
