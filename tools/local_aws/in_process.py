"""moto in this process: the mock, the environment that keeps every client inside it, and clients.

The drills use it rather than a moto server because they inject faults into the clients and stores
the code under drill is given, which needs the code and moto in one process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import boto3
from moto import mock_aws

from aviary.clients import AWS_CONFIG
from tools.local_aws.moto_patches import quiet_about_known_limits

# What moto accepts as credentials; with them, no call can be signed for a real account.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
MOTO_ACCOUNT = "123456789012"  # moto's default account
# Environment that could lead a client away from the in-process mock (a moto server, a profile).
_LEADS_AWAY = ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE")


@contextmanager
def environment(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set (or, for None, remove) environment variables for the block, then put them back."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def in_process_moto(
    account: str = MOTO_ACCOUNT, *, region: str | None = None, extra: Mapping[str, str] | None = None
) -> Iterator[None]:
    """An in-process moto holding `account`, whatever AWS settings the caller's environment has.

    Empty when it starts and discarded when it ends, unless the caller already runs a moto mock (it
    then joins that one). An endpoint URL (a local moto server) or a profile in the environment
    would send clients past the mock, so they are cleared for the duration. `region` becomes the
    default region; `extra` are further variables for the block (a handler's settings, say).
    """
    values: dict[str, str | None] = {
        name: None for name in os.environ if name in _LEADS_AWAY or name.startswith("AWS_ENDPOINT_URL_")
    }
    values |= {"MOTO_ACCOUNT_ID": account, **FAKE_CREDENTIALS}
    if region is not None:
        values["AWS_DEFAULT_REGION"] = region
    values |= dict(extra or {})
    with environment(values), mock_aws(), quiet_about_known_limits():
        yield


def aws_client(service: str, region: str) -> Any:
    """A client built from Aviary's one shared Config, as the code under drill builds its own."""
    return boto3.client(service, region_name=region, config=AWS_CONFIG)
