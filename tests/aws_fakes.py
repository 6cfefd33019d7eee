"""An environment for tests that talk to moto: fake credentials, a default region, nothing that could
reach real AWS. (Tables, counting clients and API events come from the local-AWS harness,
tools/local_aws, which the drills use too.)"""

from __future__ import annotations

import pytest

from tools.local_aws.in_process import FAKE_CREDENTIALS

DEFAULT_REGION = "us-east-1"


def use_fake_aws(patch: pytest.MonkeyPatch, region: str = DEFAULT_REGION) -> None:
    """Fake credentials and a default region, and no endpoint or profile that could lead to real AWS."""
    for name, value in {**FAKE_CREDENTIALS, "AWS_DEFAULT_REGION": region}.items():
        patch.setenv(name, value)
    patch.delenv("AWS_ENDPOINT_URL", raising=False)
    patch.delenv("AWS_PROFILE", raising=False)
