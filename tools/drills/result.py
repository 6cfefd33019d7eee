"""What one drill reports: a row of `make drill`'s summary table."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DrillResult:
    scenario: str  # e.g. "AZ us-east-1a lost"
    injected: str  # what was done to the system, e.g. "3 hosts terminated"
    survived: int  # units of work (tweets, timelines, requests) that came through intact
    lost: int  # units that should have survived and did not
    duplicated: int  # units that appear more than once where exactly once is the rule
    seconds: float  # wall time of the drill
    # Further figures worth printing (e.g. {"failover_seconds": 3.1}); insertion order is kept.
    details: dict[str, float | int | str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.lost == 0 and self.duplicated == 0
