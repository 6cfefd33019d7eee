"""The one botocore Config every Aviary AWS client is built from, and a per-process client cache.

Short timeouts and few retries: a slow dependency should fail fast so the caller can fall
back (stale cache on hosts, a retry by the event source on the write path), not pile up.
"""

from __future__ import annotations

import threading
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
