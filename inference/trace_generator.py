"""A production-like quarter of traffic, generated: for replay, reports and load tests.

:func:`generate_trace` synthesises jobs from ``TRACE_MODELS`` (8 models, 2 of them API-priced,
3 niches) with diurnal + bursty arrivals, queueing and cold starts, so that replay, reports and
load tests have realistic traffic without customer data. The same seed gives the same rows.
"""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np

from inference.trace_models import NICHES, TRACE_MODELS
from inference.trace_row import EPOCH, ONE_MS, PROVIDER_SELF_HOSTED, TraceRow, format_time
from inference.traffic import NICHE_PROMPTS

log = logging.getLogger(__name__)

DEFAULT_START = datetime(2026, 1, 1, tzinfo=timezone.utc)

# Arrivals: rate(t) = diurnal(hour UTC) x weekly x bursts, over 1-minute bins.
PEAK_HOUR_UTC = 15.0  # US morning overlapping the EU afternoon; trough 12 h later
DIURNAL_AMPLITUDE = 0.7  # peak / trough = 1.7 / 0.3
WEEKEND_FACTOR = 0.75
BURSTS_PER_DAY = 1.0  # a customer batch, a campaign going live
BURST_MINUTES = (3.0, 20.0)
BURST_MULTIPLIER = (5.0, 10.0)
# Queueing: utilisation at the ordinary daily peak, and the ceiling bursts saturate towards.
PEAK_UTILISATION = 0.4
MAX_UTILISATION = 0.9
DISPATCH_MEDIAN_MS = 30.0  # scheduler / network hop before a worker picks the job up
COLD_AFTER_IDLE_MAX = 0.9  # even after a long idle a warm replica is sometimes still there
COLD_BASE = 0.002  # node restarts, preemptions
DELIVERY_MEDIAN_MS = 40.0  # encode + upload + webhook, a few ms to a few hundred
_BIN_MS = 60_000


def _arrivals(rng: np.random.Generator, n: int, start_ms: int, total_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """n arrival times (epoch ms, sorted) and the load at each, relative to the ordinary daily peak.

    Given the count, a non-homogeneous Poisson process's arrival times are i.i.d. with density
    proportional to its rate, so sampling n of them from the rate curve is exact.
    """
    edges = np.arange(0, total_ms, _BIN_MS, dtype=np.int64)
    lengths = np.minimum(_BIN_MS, total_ms - edges)
    mid = (start_ms + edges + lengths / 2).astype(np.float64)
    hour = (mid / 3_600_000.0) % 24.0
    weekday = (np.floor(mid / 86_400_000.0).astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    base = (1.0 + DIURNAL_AMPLITUDE * np.cos(2 * np.pi * (hour - PEAK_HOUR_UTC) / 24.0)) \
        * np.where(weekday >= 5, WEEKEND_FACTOR, 1.0)
    burst = np.ones(len(edges))
    for _ in range(rng.poisson(BURSTS_PER_DAY * total_ms / 86_400_000.0)):
        first = int(rng.integers(0, len(edges)))
        width = max(1, int(round(rng.uniform(*BURST_MINUTES))))
        burst[first:first + width] = np.maximum(burst[first:first + width], rng.uniform(*BURST_MULTIPLIER))
    rate = base * burst
    cdf = np.cumsum(rate * lengths)
    bins = np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right"), len(edges) - 1)
    times = start_ms + edges[bins] + np.floor(rng.random(n) * lengths[bins]).astype(np.int64)
    order = np.argsort(times, kind="stable")
    return times[order], (rate[bins] / (1.0 + DIURNAL_AMPLITUDE))[order]


def _lognormal_ms(median_s: np.ndarray | float, sigma: np.ndarray | float, z: np.ndarray) -> np.ndarray:
    return np.maximum(1, np.round(np.asarray(median_s) * 1000.0 * np.exp(np.asarray(sigma) * z))).astype(np.int64)


def generate_trace(n: int, *, seed: int = 0, start: datetime | None = None, days: float = 91.0) -> list[TraceRow]:
    """A production-like trace of ``n`` jobs over ``days`` from ``start`` (default 2026-01-01Z,
    a quarter), sorted by requested_at; the same seed gives the same rows.

    Shape: 8 models (``TRACE_MODELS``; 2 API-priced) with their own niche mixes and lognormal
    latencies; arrivals follow a diurnal + weekly cycle with bursts of 5-10x lasting minutes;
    queue waits grow with load (utilisation rho, wait ~ service x rho / (1 - rho)); a self-hosted
    model that sat idle for hours is likely to start cold (5-20 s load, inside started ->
    completed, billed as GPU-seconds); API models show no cold start, only their heavier tail.
    """
    start = _checked_start(n, start, days)
    if n == 0:
        return []
    rng = np.random.default_rng([seed & 0xFFFF_FFFF_FFFF_FFFF, 0x7ACE])
    start_ms = (start.astimezone(timezone.utc) - EPOCH) // ONE_MS
    times, load = _arrivals(rng, n, start_ms, int(days * 86_400_000))
    jobs = _draw_jobs(rng, times, load)
    rows = [_trace_row(jobs, i, seed) for i in range(n)]
    log.debug("generated %d trace rows (seed %d) from %s over %.1f days", n, seed, format_time(start), days)
    return rows


def _checked_start(n: int, start: datetime | None, days: float) -> datetime:
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not days > 0:
        raise ValueError(f"days must be > 0, got {days}")
    start = DEFAULT_START if start is None else start
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware (UTC)")
    return start


@dataclass(frozen=True)
class _Jobs:
    """What was drawn for each job, one array entry per job in arrival order (times in ms)."""

    requested: np.ndarray  # epoch ms
    model_idx: np.ndarray  # index into TRACE_MODELS
    niche_idx: np.ndarray  # index into NICHES
    prompt_pick: np.ndarray
    image_seed: np.ndarray
    queue_ms: np.ndarray
    cold_ms: np.ndarray  # model load, 0 on a warm replica
    infer_ms: np.ndarray
    delivery_ms: np.ndarray


def _draw_jobs(rng: np.random.Generator, times: np.ndarray, load: np.ndarray) -> _Jobs:
    """Model, niche, prompt and seed of each job, then its queue, inference, load and delivery times.

    The draws are made in one fixed order: the same seed must keep giving the same trace.
    """
    n = len(times)
    models = TRACE_MODELS
    shares = np.array([m.share for m in models])
    model_idx = rng.choice(len(models), size=n, p=shares / shares.sum())
    niche_cdf = np.cumsum(np.array([m.niche_mix for m in models]), axis=1)
    niche_cdf /= niche_cdf[:, -1:]
    niche_idx = np.minimum((rng.random(n)[:, None] >= niche_cdf[model_idx]).sum(axis=1), len(NICHES) - 1)
    prompt_pick = rng.integers(0, 1 << 30, size=n)
    image_seed = rng.integers(0, 2**31, size=n)

    median_s = np.array([m.inference_median_s for m in models])[model_idx]
    sigma = np.array([m.inference_sigma for m in models])[model_idx]
    infer_ms = _lognormal_ms(median_s, sigma, rng.standard_normal(n))
    slow = rng.random(n) < np.array([m.slow_call_prob for m in models])[model_idx]
    infer_ms = np.where(slow, np.round(infer_ms * rng.uniform(2.0, 5.0, size=n)).astype(np.int64), infer_ms)

    rho = np.minimum(MAX_UTILISATION, PEAK_UTILISATION * load)
    queue_ms = _lognormal_ms(DISPATCH_MEDIAN_MS / 1000.0, 0.6, rng.standard_normal(n)) \
        + np.round(median_s * 1000.0 * rho / (1.0 - rho) * rng.exponential(1.0, size=n)).astype(np.int64)
    cold_draw = rng.random(n)
    load_ms = _lognormal_ms(np.array([m.cold_start_median_s for m in models])[model_idx], 0.35,
                            rng.standard_normal(n))
    delivery_ms = _lognormal_ms(DELIVERY_MEDIAN_MS / 1000.0, 0.9, rng.standard_normal(n))
    cold_ms = _cold_starts(times, model_idx, rho, cold_draw, load_ms)
    return _Jobs(times, model_idx, niche_idx, prompt_pick, image_seed, queue_ms, cold_ms, infer_ms, delivery_ms)


def _cold_starts(times: np.ndarray, model_idx: np.ndarray, rho: np.ndarray, draw: np.ndarray,
                 load_ms: np.ndarray) -> np.ndarray:
    """The model load of each job (``load_ms``) where it started cold, else 0.

    The longer a self-hosted model sat idle, the likelier its replicas were drained (scale to
    zero); a burst that pushes utilisation high makes the autoscaler add cold ones. API models
    never start cold.
    """
    cold_ms = np.zeros(len(times), dtype=np.int64)
    last_request: dict[int, int] = {}  # model index -> its previous request, epoch ms
    for i in range(len(times)):
        k = int(model_idx[i])
        m = TRACE_MODELS[k]
        if m.provider != PROVIDER_SELF_HOSTED:
            continue
        t = int(times[i])
        gap_s = (t - last_request[k]) / 1000.0 if k in last_request else math.inf
        p_cold = (COLD_BASE + COLD_AFTER_IDLE_MAX * -math.expm1(-gap_s / m.idle_scale_s)
                  + 0.1 * max(0.0, float(rho[i]) - 0.6) / (MAX_UTILISATION - 0.6))
        if draw[i] < p_cold:
            cold_ms[i] = int(load_ms[i])
        last_request[k] = t
    return cold_ms


def _trace_row(jobs: _Jobs, i: int, seed: int) -> TraceRow:
    """Job ``i`` as a TraceRow: its timestamps laid end to end, its cost from its model."""
    m = TRACE_MODELS[int(jobs.model_idx[i])]
    requested = int(jobs.requested[i])
    started = requested + int(jobs.queue_ms[i])
    cold_ms = int(jobs.cold_ms[i])
    completed = started + cold_ms + int(jobs.infer_ms[i])
    delivered = completed + int(jobs.delivery_ms[i])
    niche = NICHES[int(jobs.niche_idx[i])]
    prompts = NICHE_PROMPTS[niche]
    return TraceRow(
        job_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"sentinel/trace/{seed}/{i}")),
        model=m.model,
        model_version=m.version,
        provider=m.provider,
        niche=niche,
        prompt=prompts[int(jobs.prompt_pick[i]) % len(prompts)],
        requested_at=_at(requested),
        started_at=_at(started),
        completed_at=_at(completed),
        delivered_at=_at(delivered),
        cold_start=cold_ms > 0,
        cold_start_ms=float(cold_ms),
        gpu_type=m.gpu_type,
        gpu_seconds=(completed - started) / 1000.0 if m.provider == PROVIDER_SELF_HOSTED else 0.0,
        api_cost_usd=m.api_cost_usd,
        seed=int(jobs.image_seed[i]),
        reference_image=None,
    )


def _at(epoch_ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=epoch_ms)
