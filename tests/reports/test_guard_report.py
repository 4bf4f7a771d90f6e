"""The guard section's SQL on a real chDB store: synthetic guarded requests (attempts, verdicts,
a failed request, an outage) stored through the worker's row builders, the section compared
with a recomputation in numpy; no guarded rows -> no section."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from reports.guard import guard_section
from reports.report import pricing_params
from sentinel.cost import Pricing
from warehouse.client import ClickHouseWarehouse, migrate
from warehouse.rows import guard_check_rows, job_rows
from warehouse.window import Window

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
PRICING = Pricing(gpu_usd_per_hour={"L4": 0.8}, orchestration_overhead=0.15, platform_fee_usd_per_image=0.002)
# request -> attempts as (passed or None for an outage, failed checks, gpu_seconds)
PLAN = {
    "r1": [(True, [], 1.0)],
    "r2": [(False, ["blank"], 1.5), (True, [], 2.0)],
    "r3": [(False, ["resolution", "blank"], 0.5), (False, ["repeated"], 0.7)],  # failed every attempt
    "r4": [(None, [], 1.2)],  # guard unavailable: delivered unguarded
    "r5": [(False, ["repeated"], 0.9), (True, [], 1.1)],
}


def _events() -> list[dict]:
    out = []
    for n, (request_id, attempts) in enumerate(PLAN.items()):
        requested, t = T0 + timedelta(seconds=10 * n), 50.0
        for k, (passed, failed, gpu) in enumerate(attempts, start=1):
            started = requested + timedelta(milliseconds=t)
            t += gpu * 1000 + 30 + 7 * k  # generation, then the verdict call (guard_ms)
            last = k == len(attempts)
            out.append({
                "job_id": request_id if k == 1 else f"{request_id}.a{k}", "model_id": "m", "model_version": "1",
                "provider": "self_hosted", "niche": "product" if n % 2 else "headshot", "prompt": "p", "seed": k,
                "reference_image": None, "image": b"x", "media_type": "image/png", "requested_at": requested,
                "started_at": started, "completed_at": started + timedelta(milliseconds=gpu * 1000),
                "delivered_at": requested + timedelta(milliseconds=t), "cold_start": False, "cold_start_ms": 0.0,
                "inference_ms": gpu * 1000, "encode_ms": 1.0, "gpu_type": "L4", "gpu_seconds": gpu,
                "api_cost_usd": None, "node_id": "n", "request_id": request_id, "attempt": k,
                "delivered": passed is not False, "guard_passed": passed,
                "guard_score": None if passed is None else (90.0 if passed else 20.0),
                "guard_failed_checks": None if passed is None else failed,
                "guard_checks": None if passed is None else [
                    {"name": c, "value": 0.0, "threshold": 1.0, "passed": c not in failed, "reason": "r"}
                    for c in ("blank", "resolution", "repeated")],
                "guard_rubric_version": None if passed is None else "rubric-7", "guard_scorer_version": "s",
                "guard_ms": 30.0 + 7 * k, "guard_error": "ConnectError" if passed is None else None,
            })
            if last and passed is False:
                assert out[-1]["delivered"] is False
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    warehouse = ClickHouseWarehouse(f"chdb://{Path(tmp_path_factory.mktemp('guard_report')) / 'ch'}")
    try:
        migrate(warehouse)
        yield warehouse
    finally:
        warehouse.close()


def _cost(e: dict) -> float:
    return e["gpu_seconds"] * 0.8 / 3600 * 1.15 + 0.002


def test_no_guarded_rows_no_section(store) -> None:
    params = {**Window().params(), **pricing_params(PRICING)}
    assert guard_section(store, params) is None


def test_section_equals_a_recomputation(store) -> None:
    events = _events()
    unguarded = {**events[0], "job_id": "plain", "request_id": None, "attempt": None, "delivered": None,
                 "guard_passed": None, "guard_failed_checks": None, "guard_checks": None, "guard_error": None,
                 "guard_ms": None, "guard_rubric_version": None}
    store.insert("sentinel.jobs", job_rows([(e, 0, i) for i, e in enumerate(events + [unguarded])]), "g-jobs")
    store.insert("sentinel.guard_checks", guard_check_rows(events), "g-checks")
    section = guard_section(store, {**Window().params(), **pricing_params(PRICING)})
    row = section["models"][0]
    delivered = [e for e in events if e["delivered"]]
    firsts = [e for e in events if e["attempt"] == 1 and e["guard_passed"] is not None]
    assert (row["requests"], row["attempts"], row["delivered"], row["failed_requests"], row["unguarded"]) == \
        (5, len(events), 4, 1, 1)
    assert row["first_attempt_pass_rate"] == pytest.approx(np.mean([e["guard_passed"] for e in firsts]))
    assert row["attempts_per_delivered"] == pytest.approx(len(events) / len(delivered))
    assert row["cost_per_delivered_usd"] == pytest.approx(sum(map(_cost, events)) / len(delivered), rel=1e-12)
    added = []
    for request_id in PLAN:
        attempts = [e for e in events if e["request_id"] == request_id]
        kept = [e for e in attempts if e["delivered"]]
        if kept:
            lat = lambda e: (e["delivered_at"] - e["requested_at"]).total_seconds() * 1000  # noqa: E731
            added.append(lat(kept[0]) - (lat(attempts[0]) - attempts[0]["guard_ms"]))
    assert row["p95_added_latency_ms"] == pytest.approx(np.percentile(added, 95))
    want = Counter(c for e in events for c in e["guard_failed_checks"] or [])
    assert {c["check"]: c["failed"] for c in row["failed_checks"]} == dict(want)
    judged = sum(e["guard_passed"] is not None for e in events)
    assert {c["check"]: c["share"] for c in row["failed_checks"]} == pytest.approx(
        {k: v / judged for k, v in want.items()})
    assert sorted(r["niche"] for r in section["niches"]) == ["headshot", "product"]
    assert sum(r["requests"] for r in section["niches"]) == 5
    assert section["rubrics"] == [{"rubric_version": "rubric-7", "scorer_version": "s", "attempts": len(events) - 1}]
    stored = store.query("SELECT count() AS n FROM sentinel.guard_checks FINAL").column("n").to_pylist()
    assert stored == [3 * (len(events) - 1)]  # three checks per verdict
