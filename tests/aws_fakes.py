"""Test doubles shared by the tests that talk to moto: fake credentials and a call-counting client."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

DEFAULT_REGION = "us-east-1"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}

Fault = Callable[[str, dict[str, Any]], Any]


def use_fake_aws(patch: pytest.MonkeyPatch, region: str = DEFAULT_REGION) -> None:
    """Fake credentials and a default region, and no endpoint or profile that could lead to real AWS."""
    for name, value in {**FAKE_CREDENTIALS, "AWS_DEFAULT_REGION": region}.items():
        patch.setenv(name, value)
    patch.delenv("AWS_ENDPOINT_URL", raising=False)
    patch.delenv("AWS_PROFILE", raising=False)


class CountingClient:
    """Passes calls through to a real boto3 client and records their names.

    `calls` lists the operations in call order or, with `by_operation=True`, counts them in a Counter.
    `batch_sizes` keeps the number of requests per table of every BatchWriteItem. `fault`, if given,
    sees each call (name and keyword arguments) first: it may raise, or return an answer that stands in
    for the real one (None lets the call through).
    """

    def __init__(self, client: Any, fault: Fault | None = None, *, by_operation: bool = False) -> None:
        self._client = client
        self.fault = fault
        self.calls: Any = Counter() if by_operation else []
        self.batch_sizes: list[int] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            if isinstance(self.calls, Counter):
                self.calls[name] += 1
            else:
                self.calls.append(name)
            if name == "batch_write_item":
                self.batch_sizes.extend(len(requests) for requests in kwargs["RequestItems"].values())
            if self.fault is not None:
                answer = self.fault(name, kwargs)
                if answer is not None:
                    return answer
            return attribute(*args, **kwargs)

        return call
