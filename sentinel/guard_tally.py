"""Live guard-mode tallies (per model x niche x bucket x partition, next to the job tally):
verdicts, first-attempt passes, discarded attempts and failures by check, mergeable and
serializable like the other live states. Offset idempotence comes from the job tally it rides
with (``LiveStats.update`` applies both or neither).

Definitions match the report (sql/reports/guard.sql): pass rate = passed / verdicts;
first-attempt pass rate over attempts numbered 1; delivered images = jobs - discarded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


def guard_input(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """The guard facts of one JobCompleted, or None for an unguarded node's event."""
    if event.get("guard_passed") is None and event.get("guard_error") is None and event.get("delivered") is None:
        return None
    return {"attempt": event.get("attempt") or 1, "delivered": event.get("delivered") is not False,
            "passed": event.get("guard_passed"), "failed_checks": list(event.get("guard_failed_checks") or ()),
            "unguarded": event.get("guard_error") is not None}


@dataclass
class GuardTally:
    attempts: int = 0  # guarded attempts
    verdicts: int = 0
    passed: int = 0
    first_verdicts: int = 0
    first_passed: int = 0
    discarded: int = 0  # attempts not delivered
    unguarded: int = 0  # delivered without a verdict (guard unavailable)
    failed_by_check: dict[str, int] = field(default_factory=dict)

    def update(self, *, attempt: int, delivered: bool, passed: bool | None, failed_checks: list[str],
               unguarded: bool) -> None:
        self.attempts += 1
        self.discarded += not delivered
        self.unguarded += unguarded
        if passed is not None:
            self.verdicts += 1
            self.passed += passed
            if attempt == 1:
                self.first_verdicts += 1
                self.first_passed += passed
        for name in failed_checks:
            self.failed_by_check[name] = self.failed_by_check.get(name, 0) + 1

    def merge(self, other: "GuardTally") -> "GuardTally":
        checks = dict(self.failed_by_check)
        for name, n in other.failed_by_check.items():
            checks[name] = checks.get(name, 0) + n
        return GuardTally(self.attempts + other.attempts, self.verdicts + other.verdicts, self.passed + other.passed,
                          self.first_verdicts + other.first_verdicts, self.first_passed + other.first_passed,
                          self.discarded + other.discarded, self.unguarded + other.unguarded, checks)

    def compute(self) -> dict[str, Any]:
        return {
            "guarded_attempts": self.attempts,
            "guard_pass_rate": self.passed / self.verdicts if self.verdicts else None,
            "first_attempt_pass_rate": self.first_passed / self.first_verdicts if self.first_verdicts else None,
            "discarded": self.discarded,
            "unguarded": self.unguarded,
            "failed_by_check": dict(sorted(self.failed_by_check.items(), key=lambda kv: (-kv[1], kv[0]))),
        }

    def to_dict(self) -> dict[str, Any]:
        return {"attempts": self.attempts, "verdicts": self.verdicts, "passed": self.passed,
                "first_verdicts": self.first_verdicts, "first_passed": self.first_passed,
                "discarded": self.discarded, "unguarded": self.unguarded, "failed_by_check": dict(self.failed_by_check)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "GuardTally":
        if not data:
            return cls()
        return cls(**{k: int(data.get(k, 0)) for k in ("attempts", "verdicts", "passed", "first_verdicts",
                                                      "first_passed", "discarded", "unguarded")},
                   failed_by_check={str(k): int(v) for k, v in (data.get("failed_by_check") or {}).items()})
