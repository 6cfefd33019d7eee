"""One JSON request to the local stage (its front door or a region's API), as the drills, the load
run and the end-to-end tests send it: what answered, with which region, never an exception for an
answer that did not come."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

# How long a client that got no answer, or a 502/503, waits before sending the same request again.
RETRY_DELAY_SECONDS = 0.25
TIMEOUT_SECONDS = 15


def request(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int | None, Any, str | None]:
    """(status, JSON body, X-Aviary-Region); status None when nothing answered."""
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, data=body, method=method, headers=headers or {}),
            timeout=TIMEOUT_SECONDS,
        ) as response:
            return (
                response.status,
                json.loads(response.read() or b"null"),
                response.headers.get("X-Aviary-Region"),
            )
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null"), error.headers.get("X-Aviary-Region")
    except (urllib.error.URLError, TimeoutError, ConnectionError):
        return None, None, None
