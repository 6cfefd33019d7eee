"""A boto3 client wrapper that records each call and can stand a fault in for the real answer: the
drills hand it to the code under drill, and tests count the calls the code makes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

Fault = Callable[[str, dict[str, Any]], Any]


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
