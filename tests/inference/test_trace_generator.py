"""The trace generator's shape: seeded, diurnal and bursty, priceable, with plausible latencies
and cold starts that follow idle gaps."""

from __future__ import annotations

import tomllib
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from inference.trace_generator import generate_trace
from inference.trace_row import TraceRow
from inference.traffic import NICHE_PROMPTS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trace() -> list[TraceRow]:
    return generate_trace(2000, seed=1)


def _ms(a: datetime, b: datetime) -> float:
    return (b - a) / timedelta(milliseconds=1)


def test_generate_is_deterministic_and_seeded(trace):
    assert generate_trace(2000, seed=1) == trace
    other = generate_trace(2000, seed=2)
    assert other != trace
    assert {r.job_id for r in other}.isdisjoint(r.job_id for r in trace)
    assert len({r.job_id for r in trace}) == len(trace)


def test_generate_shape(trace):
    assert len(trace) == 2000
    requested = [r.requested_at for r in trace]
    assert requested == sorted(requested)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert start <= requested[0] and requested[-1] < start + timedelta(days=91)
    models = Counter(r.model for r in trace)
    assert len(models) == 8
    assert {"flux-dev", "flux-schnell", "sdxl-lightning", "sdxl-turbo"} <= set(models)
    assert {r.model for r in trace if r.provider == "api"} == {"proprietary-a", "proprietary-b"}
    assert {r.niche for r in trace} == {"headshot", "product", "portrait"}
    for r in trace:
        assert r.prompt in NICHE_PROMPTS[r.niche]
        assert r.requested_at <= r.started_at <= r.completed_at <= r.delivered_at
        assert r.requested_at.tzinfo is not None and r.requested_at.utcoffset() == timedelta(0)
        assert r.reference_image is None and 0 <= r.seed < 2**31
    # per-model niche mix: the headshot LoRA is (almost) only headshots, realvis mostly portraits
    lora = Counter(r.niche for r in trace if r.model == "sd15-headshot-lora")
    assert lora["headshot"] > 0.8 * sum(lora.values()) and lora["product"] == 0


def test_generate_costs_are_priceable(trace):
    prices = tomllib.loads((ROOT / "pricing.toml").read_text())["gpu_usd_per_hour"]
    self_hosted = [r for r in trace if r.provider == "self-hosted"]
    assert {r.gpu_type for r in self_hosted} <= set(prices)
    for r in self_hosted:
        assert r.api_cost_usd is None
        assert r.gpu_seconds == pytest.approx(_ms(r.started_at, r.completed_at) / 1000)
    api = [r for r in trace if r.provider == "api"]
    assert api and all(r.gpu_seconds == 0 and r.api_cost_usd is not None and r.api_cost_usd > 0 for r in api)
    assert {r.api_cost_usd for r in api} == {0.040, 0.025}
    assert not any(r.cold_start for r in api)


def test_generate_diurnal_cycle(trace):
    hours = Counter(r.requested_at.hour for r in trace)
    peak = sum(hours[h] for h in range(13, 18))  # around the 15:00 UTC peak
    trough = sum(hours[h] for h in (1, 2, 3, 4, 5))  # around the 03:00 UTC trough
    assert peak > 3 * trough, (peak, trough)


def test_generate_latency_distributions(trace):
    infer = defaultdict(list)
    for r in trace:
        infer[r.model].append(r.inference_ms)
    median = {m: float(np.median(v)) for m, v in infer.items()}
    for fast in ("flux-schnell", "sdxl-lightning", "sdxl-turbo"):
        assert 500 <= median[fast] <= 1500, (fast, median[fast])
    assert 4000 <= median["flux-dev"] <= 6000
    for api in ("proprietary-a", "proprietary-b"):
        assert 3000 <= median[api] <= 8000
        assert max(infer[api]) > 2.5 * median[api]  # the heavier tail
    delivery = [_ms(r.completed_at, r.delivered_at) for r in trace]
    assert min(delivery) >= 1 and 10 <= np.median(delivery) <= 200 and max(delivery) < 5000


def test_generate_bursts_raise_rate_and_queue_waits():
    rows = generate_trace(20_000, seed=4, days=7.0)
    per_minute = Counter(r.requested_at.replace(second=0, microsecond=0) for r in rows)
    counts = np.array(list(per_minute.values()))
    mean_rate = len(rows) / (7 * 1440)
    assert counts.max() > 5 * mean_rate  # bursts: minutes far above the average rate
    busy = {minute for minute, c in per_minute.items() if c > 4 * mean_rate}
    wait = lambda rs: float(np.mean([_ms(r.requested_at, r.started_at) for r in rs]))  # noqa: E731
    in_burst = [r for r in rows if r.requested_at.replace(second=0, microsecond=0) in busy]
    outside = [r for r in rows if r.requested_at.replace(second=0, microsecond=0) not in busy]
    assert in_burst and wait(in_burst) > 3 * wait(outside)


def test_generate_cold_starts_follow_idle_gaps(trace):
    last: dict[str, datetime] = {}
    after_idle, warm = [], []
    for r in trace:
        if r.provider == "self-hosted":
            if r.model in last:
                gap = (r.requested_at - last[r.model]).total_seconds()
                if gap > 2 * 3600:
                    after_idle.append(r.cold_start)
                elif gap < 1800:
                    warm.append(r.cold_start)
            last[r.model] = r.requested_at
            if r.cold_start:
                assert 1500 <= r.cold_start_ms <= 60_000 and r.inference_ms >= 0
            else:
                assert r.cold_start_ms == 0
    assert len(after_idle) > 100 and len(warm) > 50
    assert np.mean(after_idle) > 0.6 and np.mean(warm) < 0.2, (np.mean(after_idle), np.mean(warm))


def test_generate_start_days_and_bad_arguments():
    start = datetime(2026, 4, 1, 6, tzinfo=timezone.utc)
    rows = generate_trace(50, seed=0, start=start, days=1.5)
    assert all(start <= r.requested_at < start + timedelta(days=1.5) for r in rows)
    assert generate_trace(0) == []
    with pytest.raises(ValueError, match="timezone"):
        generate_trace(5, start=datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        generate_trace(-1)
