"""Test doubles shared by the tests that talk to moto: fake credentials and a call-counting client
(both from the local-AWS harness, which the drills use too)."""

from __future__ import annotations

import pytest

from tools.local_aws.counting_client import CountingClient, Fault
from tools.local_aws.in_process import FAKE_CREDENTIALS

__all__ = ["DEFAULT_REGION", "FAKE_CREDENTIALS", "CountingClient", "Fault", "use_fake_aws"]

DEFAULT_REGION = "us-east-1"


def use_fake_aws(patch: pytest.MonkeyPatch, region: str = DEFAULT_REGION) -> None:
    """Fake credentials and a default region, and no endpoint or profile that could lead to real AWS."""
    for name, value in {**FAKE_CREDENTIALS, "AWS_DEFAULT_REGION": region}.items():
        patch.setenv(name, value)
    patch.delenv("AWS_ENDPOINT_URL", raising=False)
    patch.delenv("AWS_PROFILE", raising=False)
