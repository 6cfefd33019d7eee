"""The one botocore Config every Aviary AWS client is built from, and a per-process client cache.

Short timeouts and few retries: a slow dependency should fail fast so the caller can fall
back (stale cache on hosts, a retry by the event source on the write path), not pile up.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.config import Config

AWS_CONFIG = Config(
    connect_timeout=1,
    read_timeout=3,
    retries={"mode": "standard", "total_max_attempts": 3},  # the first try and two retries
    # Streams calls go to account-based endpoints otherwise, which moto cannot intercept.
    account_id_endpoint_mode="disabled",
)

# For health probes, which must answer within a health checker's patience (Route 53 waits two seconds
# for a status once connected): one attempt, a second to connect and a second to read.
PROBE_CONFIG = AWS_CONFIG.merge(
    Config(connect_timeout=1, read_timeout=1, retries={"mode": "standard", "total_max_attempts": 1})
)

_clients: dict[tuple[str, str | None, str | None], Any] = {}
_lock = threading.Lock()


def client(service: str, *, region: str | None = None, endpoint_url: str | None = None) -> Any:
    """A boto3 client built once per process per (service, region, endpoint) with AWS_CONFIG."""
    key = (service, region, endpoint_url)
    with _lock:
        if key not in _clients:
            _clients[key] = boto3.client(
                service, region_name=region, endpoint_url=endpoint_url, config=AWS_CONFIG
            )
        return _clients[key]


@contextmanager
def calls_made(aws_client: Any) -> Iterator[Counter[str]]:
    """Counts the API calls `aws_client` makes inside the block, by operation (a retried call once)."""
    counted: Counter[str] = Counter()

    def count(event_name: str, **_kwargs: Any) -> None:
        counted[event_name.rsplit(".", 1)[-1]] += 1

    hook = f"aviary-calls-made-{id(counted)}"
    aws_client.meta.events.register("before-call", count, unique_id=hook)
    try:
        yield counted
    finally:
        aws_client.meta.events.unregister("before-call", unique_id=hook)
