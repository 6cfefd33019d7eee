"""The faults the fault drill injects: DynamoDB calls that are throttled or time out (before or after
DynamoDB applied them), and stream batches with records delivered twice and batches out of order."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError

FAKE_ENDPOINT = "https://dynamodb.us-east-1.amazonaws.com"  # named in the timeout errors; never called
THROTTLING_CODES = ("ProvisionedThroughputExceededException", "ThrottlingException")
TIMEOUTS_AFTER_APPLY = 0.5  # the share of timeouts that strike after DynamoDB applied the call
# Operations whose request carries a ClientRequestToken that botocore fills in once per call.
TOKEN_OPERATIONS = frozenset({"transact_write_items", "execute_transaction"})


class FaultInjector:
    """A CountingClient fault: each attempt at a call may be throttled, or time out before or after
    DynamoDB applied it, and the client tries `attempts` times before the code sees the error.

    `attempts` stands for botocore's own retries: with AWS_CONFIG's three, a fault reaches the code only
    when every attempt fails, as under an AWS FIS API fault; with one, every fault reaches the code.
    The SDK's backoff waits and retry quota are left out.
    """

    def __init__(
        self,
        client: Any,
        rng: random.Random,
        *,
        throttle_rate: float,
        timeout_rate: float,
        attempts: int,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {attempts}")
        self.client = client
        self.rng = rng
        self.throttle_rate = throttle_rate
        self.timeout_rate = timeout_rate
        self.attempts = attempts
        self.enabled = True
        self.throttles: Counter[str] = Counter()
        self.timeouts_before: Counter[str] = Counter()
        self.timeouts_after: Counter[str] = Counter()
        self.surfaced: Counter[str] = Counter()  # faults that outlasted every attempt

    def __call__(self, operation: str, kwargs: dict[str, Any]) -> Any:
        if not self.enabled:
            return None
        call = getattr(self.client, operation)
        landed: Any = None  # the answer to an attempt that DynamoDB applied but the client never saw
        error: Exception | None = None
        for _attempt in range(self.attempts):
            error, answer = self._attempt(operation, call, kwargs)
            if answer is not None:
                landed = answer
            if error is None:
                if landed is not None and operation in TOKEN_OPERATIONS:
                    # The SDK sends every attempt with one ClientRequestToken, and DynamoDB answers a
                    # token it has already applied with that first outcome (moto does not).
                    return landed
                return call(**kwargs)
        self.surfaced[operation] += 1
        assert error is not None
        raise error

    def _attempt(
        self, operation: str, call: Callable[..., Any], kwargs: dict[str, Any]
    ) -> tuple[Exception | None, Any]:
        """The fault that strikes this attempt (None: it goes through), and DynamoDB's answer if the
        attempt reached DynamoDB and its answer was lost."""
        roll = self.rng.random()
        if roll < self.throttle_rate:
            self.throttles[operation] += 1
            throttled = ClientError(
                {
                    "Error": {"Code": self.rng.choice(THROTTLING_CODES), "Message": "injected by the drill"},
                    "ResponseMetadata": {"HTTPStatusCode": 400},
                },
                self.client.meta.method_to_api_mapping.get(operation, operation),
            )
            return throttled, None
        if roll >= self.throttle_rate + self.timeout_rate:
            return None, None
        if self.rng.random() >= TIMEOUTS_AFTER_APPLY:
            self.timeouts_before[operation] += 1
            return ConnectTimeoutError(endpoint_url=FAKE_ENDPOINT), None
        self.timeouts_after[operation] += 1
        try:
            answer = call(**kwargs)
        except ClientError:
            answer = None  # DynamoDB refused it; the refusal is lost like any answer
        return ReadTimeoutError(endpoint_url=FAKE_ENDPOINT), answer

    @property
    def timeouts(self) -> int:
        return sum(self.timeouts_before.values()) + sum(self.timeouts_after.values())


@dataclass
class StreamFaults:
    """Duplicates records into later batches and shuffles batches before StreamDelivery sees them."""

    rng: random.Random
    duplicate_rate: float
    reorder: bool
    duplicates: int = 0
    batches: int = 0
    reordered: int = 0

    def batches_of(self, records: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
        batches = [records[start : start + size] for start in range(0, len(records), size)]
        originals = len(batches)
        for index in range(originals):
            for record in list(batches[index]):
                if self.rng.random() >= self.duplicate_rate:
                    continue
                later = self.rng.randint(index + 1, originals)
                if later == len(batches):
                    batches.append([])
                batches[later].append(record)
                self.duplicates += 1
        order = list(range(len(batches)))
        if self.reorder:
            # AWS keeps a shard's records in order (and, with a parallelization factor, each item's
            # records); shuffling whole batches is harsher than anything the service does.
            self.rng.shuffle(order)
        self.batches += len(order)
        self.reordered += sum(1 for position, index in enumerate(order) if position != index)
        return [batches[index] for index in order]
