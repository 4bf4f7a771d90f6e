"""Live guard tallies: counts equal a recomputation from the events, merge = one state over
all, serialization round-trips, a repeated offset changes nothing, discarded attempts add cost
but no latency."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from sentinel.guard_tally import GuardTally, guard_input
from sentinel.latency import LiveStats

CHECKS = ["blank", "resolution", "repeated", "clip_alignment"]


def _events(n: int, seed: int = 5) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if rng.random() < 0.2:  # an unguarded node's event
            out.append({"attempt": None, "delivered": None, "guard_passed": None, "guard_error": None,
                        "guard_failed_checks": None, "cost": rng.random()})
            continue
        outage = rng.random() < 0.1
        passed = None if outage else rng.random() < 0.6
        failed = [] if passed is not False else rng.sample(CHECKS, rng.randint(1, 2))
        out.append({"attempt": rng.randint(1, 3), "delivered": passed is not False, "guard_passed": passed,
                    "guard_error": "timeout" if outage else None, "guard_failed_checks": None if outage else failed,
                    "cost": rng.random()})
    return out


def _apply(state: LiveStats, events: list[dict], start: int = 0) -> None:
    for offset, e in enumerate(events, start=start):
        state.update(partition=0, offset=offset, parts_ms={"e2e": 100.0 + offset, "queue": 1.0, "cold_start": 0.0,
                                                           "inference": 50.0}, gpu_seconds=1.0, cost_usd=e["cost"],
                     guard=guard_input(e))


def test_compute_equals_a_recomputation_and_merge_equals_one_state() -> None:
    events = _events(400)
    whole, left, right = LiveStats(), LiveStats(), LiveStats()
    _apply(whole, events)
    _apply(left, events[:150])
    _apply(right, events[150:], start=150)
    _apply(whole, events[:10])  # re-delivered offsets: no-ops
    got, merged = whole.compute(), left.merge(right).compute()
    guarded = [e for e in events if e["attempt"] is not None]
    verdicts = [e for e in guarded if e["guard_passed"] is not None]
    firsts = [e for e in verdicts if e["attempt"] == 1]
    discarded = sum(not e["delivered"] for e in guarded)
    assert got["guarded_attempts"] == len(guarded) and got["discarded"] == discarded
    assert got["unguarded"] == sum(e["guard_error"] is not None for e in guarded)
    assert got["guard_pass_rate"] == pytest.approx(sum(e["guard_passed"] for e in verdicts) / len(verdicts))
    assert got["first_attempt_pass_rate"] == pytest.approx(sum(e["guard_passed"] for e in firsts) / len(firsts))
    assert got["failed_by_check"] == dict(Counter(c for e in verdicts for c in e["guard_failed_checks"]))
    assert got["cost_per_image_usd"] == pytest.approx(sum(e["cost"] for e in events) / (len(events) - discarded))
    assert whole.latency["e2e"].count == len(events) - discarded  # no latency from discarded attempts
    for key in ("guarded_attempts", "discarded", "unguarded", "failed_by_check"):
        assert merged[key] == got[key]
    assert merged["guard_pass_rate"] == pytest.approx(got["guard_pass_rate"])
    again = LiveStats.from_dict(whole.to_dict())
    assert again.guard == whole.guard and again.compute()["guarded_attempts"] == len(guarded)


def test_unguarded_states_serialize_as_before() -> None:
    state = LiveStats()
    _apply(state, [{"attempt": None, "delivered": None, "guard_passed": None, "guard_error": None, "cost": 0.5}])
    assert "guard" not in state.to_dict() and "guard_pass_rate" not in state.compute()
    assert LiveStats.from_dict(state.to_dict()).guard == GuardTally()
