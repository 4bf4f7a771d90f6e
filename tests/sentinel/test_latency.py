"""Latency sketches against numpy's exact percentiles; LiveStats idempotence and round trips."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from sentinel.latency import PARTS, LatencySketch, LiveStats, latency_parts, merge_all


def latencies(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    warm = rng.lognormal(np.log(1300), 0.45, n)
    cold = rng.lognormal(np.log(7000), 0.35, n)
    return np.where(rng.random(n) < 0.05, cold, warm)


@pytest.mark.parametrize("seed", [0, 1])
def test_merged_shards_within_half_percent_of_exact(seed: int) -> None:
    values = latencies(200_000, seed)
    shards = [LatencySketch() for _ in range(16)]
    for i, v in enumerate(values):  # one value at a time, as the stream does
        shards[i % 16].update(float(v))
    merged = shards[0]
    for s in shards[1:]:
        merged = merged.merge(s)
    assert merged.count == len(values)
    for q in (0.5, 0.95, 0.99):
        assert merged.quantile(q) == pytest.approx(np.percentile(values, q * 100), rel=0.005)


def test_serialization_round_trip_is_exact_and_json_safe() -> None:
    sketch = LatencySketch()
    sketch.update_many(latencies(5000).tolist())
    restored = LatencySketch.from_dict(json.loads(json.dumps(sketch.to_dict(), allow_nan=False)))
    for q in (0.5, 0.95, 0.99):
        assert restored.quantile(q) == sketch.quantile(q)
    empty = LatencySketch()
    assert json.loads(json.dumps(LiveStats().to_dict(), allow_nan=False))["latency"]["e2e"] is None
    assert LatencySketch.from_dict(empty.to_dict()).quantile(0.95) is None


def event(i: int) -> dict:
    t0 = datetime(2026, 3, 1, tzinfo=timezone.utc) + timedelta(seconds=i)
    started = t0 + timedelta(milliseconds=100 + i)
    completed = started + timedelta(milliseconds=900 + 3 * i)
    return {"requested_at": t0, "started_at": started, "completed_at": completed,
            "delivered_at": completed + timedelta(milliseconds=20), "cold_start_ms": 0.0 if i % 7 else 400.0,
            "inference_ms": None if i % 2 else 850.0 + i}


def test_latency_parts_from_timestamps() -> None:
    e = event(3)
    parts = latency_parts(e)
    assert parts["e2e"] == (e["delivered_at"] - e["requested_at"]).total_seconds() * 1000
    assert parts["queue"] == 103.0
    # without inference_ms: node time minus the cold start
    assert parts["inference"] == 909.0 - 0.0
    assert latency_parts(event(2))["inference"] == 852.0


def test_live_stats_skip_replayed_offsets() -> None:
    events = [event(i) for i in range(300)]
    once, replayed = LiveStats(), LiveStats()
    for offset, e in enumerate(events):
        once.update(partition=0, offset=offset, parts_ms=latency_parts(e), gpu_seconds=1.0, cost_usd=0.01)
    # at-least-once: the tail is delivered again after a "crash"
    for offset, e in list(enumerate(events)) + list(enumerate(events))[150:]:
        replayed.update(partition=0, offset=offset, parts_ms=latency_parts(e), gpu_seconds=1.0, cost_usd=0.01)
    assert replayed.to_dict() == once.to_dict()
    assert once.tally.jobs == 300 and once.tally.cost_usd == pytest.approx(3.0, rel=1e-12)
    e2e = np.array([latency_parts(e)["e2e"] for e in events])
    assert once.compute()["e2e_p95_ms"] == pytest.approx(np.percentile(e2e, 95), rel=0.005)


def test_merge_all_combines_partitions() -> None:
    parts = []
    for p in range(4):
        s = LiveStats()
        for offset in range(50):
            s.update(partition=p, offset=offset, parts_ms=latency_parts(event(p * 50 + offset)),
                     gpu_seconds=0.5, cost_usd=0.001)
        parts.append(s)
    merged = merge_all(parts)
    assert merged.tally.jobs == 200 and merged.tally.last_offsets() == {0: 49, 1: 49, 2: 49, 3: 49}
    assert all(merged.latency[p].count == 200 for p in PARTS)
    assert LiveStats.from_dict(json.loads(json.dumps(merged.to_dict()))).to_dict() == merged.to_dict()


def test_v2_bytes_form_round_trips_exactly_and_v1_still_reads() -> None:
    rng = np.random.default_rng(7)
    state = LiveStats()
    for k in range(3000):
        parts = {p: float(rng.lognormal(6, 0.7)) for p in ("e2e", "queue", "cold_start", "inference")}
        state.update(partition=0, offset=k, parts_ms=parts, gpu_seconds=1.0, cost_usd=0.01)
    v2 = json.loads(json.dumps(state.to_dict(), allow_nan=False))
    assert v2["v"] == 2 and all(isinstance(v, str) for v in v2["latency"].values())
    back = LiveStats.from_dict(v2)
    v1 = {"v": 1, "tally": state.tally.to_dict(),
          "latency": {p: state.latency[p].to_dict() for p in state.latency}}
    old = LiveStats.from_dict(json.loads(json.dumps(v1)))
    for q in (0.5, 0.95, 0.99):
        for part in state.latency:
            assert back.latency[part].quantile(q) == state.latency[part].quantile(q)
            assert old.latency[part].quantile(q) == pytest.approx(state.latency[part].quantile(q), rel=1e-12)
    assert back.compute() == state.compute()
    # replaying an applied offset is still a no-op after the round trip
    assert back.update(partition=0, offset=10, parts_ms={p: 1.0 for p in state.latency}, gpu_seconds=1, cost_usd=1) is False


@pytest.mark.parametrize("n", [1, 2, LatencySketch.SMALL - 1, LatencySketch.SMALL, LatencySketch.SMALL + 1, 500, 3000])
def test_small_sketch_serializes_as_a_digest_updated_value_by_value(n: int) -> None:
    """A sketch keeps its first values in a list (no 8 KB digest per live key); what it writes,
    reads back and answers is what fastdigest gives for the same values one at a time."""
    from fastdigest import TDigest

    values = latencies(n, seed=n).tolist()
    sketch, reference = LatencySketch(), TDigest(max_centroids=500)
    for v in values:
        sketch.update(v)
        reference.update(v)
    assert sketch.count == n == reference.n_values
    assert sketch.to_b64() is not None
    assert LatencySketch.from_dict(sketch.to_b64()).digest.to_bytes() == reference.to_bytes()
    assert sketch.to_dict() == reference.to_dict()
    for q in (0.5, 0.95, 0.99):
        assert sketch.quantile(q) == reference.quantile(q)
    big = LatencySketch()
    big.update_many(latencies(2000, seed=9).tolist())
    assert sketch.merge(big).count == big.merge(sketch).count == n + 2000
    assert sketch.merge(big).to_b64() == LatencySketch(reference).merge(big).to_b64()


def test_a_value_that_is_not_finite_is_refused_at_once() -> None:
    """As fastdigest refuses it, also while the sketch still keeps its values in a list."""
    sketch = LatencySketch()
    sketch.update(1.0)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError):
            sketch.update(bad)
    assert sketch.count == 1 and sketch.quantile(0.5) == 1.0
