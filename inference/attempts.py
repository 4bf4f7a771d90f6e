"""Attempts of one customer request (guard mode) as JobCompleted fields.

Every attempt is its own job: attempt 1 keeps the request's job id, attempt n > 1 is
``<request id>.a<n>`` with a new image seed. ``UNGUARDED`` are the fields of an event from a
node without a guard: all null, which the schema reads as "one attempt, delivered, no verdict"
(null rather than 1/true so that an event written before these fields existed hashes the same:
contracts.codec.content_hash skips nulls).
"""

from __future__ import annotations

from typing import Any

UNGUARDED: dict[str, Any] = {
    "request_id": None, "attempt": None, "delivered": None, "guard_passed": None, "guard_score": None,
    "guard_failed_checks": None, "guard_checks": None, "guard_rubric_version": None,
    "guard_scorer_version": None, "guard_ms": None, "guard_error": None,
}
_SEED_STEP = 0x9E3779B1  # a large odd step: attempts of nearby seeds never share a seed


def attempt_job_id(request_id: str, attempt: int) -> str:
    return request_id if attempt == 1 else f"{request_id}.a{attempt}"


def attempt_seed(seed: int, attempt: int) -> int:
    """Attempt 1 uses the request's seed; each retry a new one (a seed stays below 2**31)."""
    return (seed + (attempt - 1) * _SEED_STEP) % 2**31
