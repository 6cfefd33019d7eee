"""Build a handler's service on its first event, once per process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class BuiltOnFirstUse:
    """Stands for the object `build` returns, building it when first used.

    A boto3 client costs about as much as importing boto3 again (service model, endpoint
    rules), so building it at import would double a handler's cold-start import; it is
    still made only once per process.
    """

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._built: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._built is None:
            self._built = self._build()
        return getattr(self._built, name)
