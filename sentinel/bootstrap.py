"""Percentile-bootstrap math of the benchmark's intervals (the method: reports/intervals.py).

Pure: per group, job arrays in, interval lists out; each group's random stream depends only on
the seed and the group's name, so the same data and seed give the same intervals.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import numpy as np

from sentinel.composite import Anchors, CompositeWeights, clip_component, combine
from sentinel.human import expected_score

LEVEL = 0.95
CI_KEYS = {  # row key -> its interval's key
    "composite": "composite_ci",
    "cost_per_image_usd": "cost_per_image_usd_ci",
    "p95_latency_ms": "p95_latency_ms_ci",
    "clip": "clip_ci",
}
_CELLS_PER_CHUNK = 4_000_000  # resample-index matrix cells held at once (32 MB of int64)


@dataclass(frozen=True)
class BootstrapConfig:
    resamples: int = 1000  # 0: no intervals
    seed: int = 0
    max_jobs: int = 5_000  # jobs per group pulled for the bootstrap

    def __post_init__(self) -> None:
        if self.resamples < 0 or self.max_jobs < 1:
            raise ValueError(f"bootstrap resamples must be >= 0 and max_jobs >= 1, got {self}")

    def as_dict(self) -> dict[str, Any]:
        return {"resamples": self.resamples, "seed": self.seed, "max_jobs_per_group": self.max_jobs}


def group_rng(seed: int, model: str, niche: str) -> np.random.Generator:
    """The random stream of one group: a function of the seed and the group's name only."""
    return np.random.default_rng([int(seed), zlib.crc32(f"{model}\0{niche}".encode())])


def resample_indices(rng: np.random.Generator, n: int, resamples: int) -> Iterator[np.ndarray]:
    """Bootstrap draws as (rows, n) index blocks; together ``resamples`` rows, drawn in order
    from ``rng`` (the same numbers as one ``rng.integers(0, n, (resamples, n))`` call)."""
    rows = max(1, _CELLS_PER_CHUNK // max(n, 1))
    for start in range(0, resamples, rows):
        yield rng.integers(0, n, size=(min(rows, resamples - start), n))


def bootstrap_stats(latency: np.ndarray, cost: np.ndarray, clip: np.ndarray, rng: np.random.Generator,
                    resamples: int) -> dict[str, np.ndarray]:
    """Per bootstrap sample: mean cost, p95 latency (linear) and mean CLIP over the drawn jobs
    that have a score (``clip`` NaN = unscored; NaN when a draw has none)."""
    latency, cost, clip = (np.asarray(a, np.float64) for a in (latency, cost, clip))
    n = len(latency)
    scored = ~np.isnan(clip)
    clip0 = np.where(scored, clip, 0.0)
    out: dict[str, list[np.ndarray]] = {"cost": [], "p95": [], "clip": []}
    for idx in resample_indices(rng, n, resamples):
        out["cost"].append(cost[idx].mean(axis=1))
        out["p95"].append(np.percentile(latency[idx], 95, axis=1))
        if scored.all():
            out["clip"].append(clip[idx].mean(axis=1))
            continue
        count = scored[idx].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["clip"].append(np.where(count > 0, clip0[idx].sum(axis=1) / count, np.nan))
    return {k: np.concatenate(v) if v else np.empty(0) for k, v in out.items()}


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> list[float] | None:
    """[lo, hi]: the (1-level)/2 and (1+level)/2 percentiles (linear) of the finite values."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return None
    lo, hi = np.percentile(v, [50 * (1 - level), 50 * (1 + level)])
    return [float(lo), float(hi)]


def human_draws(rng: np.random.Generator, fit_model: Mapping[str, Any] | None, tie_param: float,
                resamples: int) -> np.ndarray | None:
    """0-100 human scores from theta ~ N(strength, stderr²) through the fit's expected score."""
    if not fit_model:
        return None
    theta = rng.normal(fit_model["strength"], fit_model["stderr"], resamples)
    return 100.0 * expected_score(theta, tie_param)


def composite_draws(row: Mapping[str, Any], clip: np.ndarray, human: np.ndarray | None,
                    weights: CompositeWeights, clip_anchor: Anchors,
                    fid_score: np.ndarray | None = None) -> np.ndarray | None:
    """Composite per bootstrap sample with the row's point-estimate weights; FID_score fixed
    unless per-draw ``fid_score`` values are given (significance, ``sentinel.significance_fid``)."""
    point = combine({"fid": row.get("fid_score"),
                     "clip": None if row.get("clip") is None else clip_component(row["clip"], clip_anchor),
                     "human": row.get("human")}, weights)
    if point.composite is None:
        return None
    used = point.weights_used
    total = np.zeros(len(clip))
    if used["fid"] > 0:
        total += used["fid"] * (np.clip(fid_score, 0.0, 100.0) if fid_score is not None
                                else point.components["fid"])  # type: ignore[operator]
    if used["clip"] > 0:
        t = (clip - clip_anchor.clip_floor) / (clip_anchor.clip_ceiling - clip_anchor.clip_floor)
        total += used["clip"] * 100.0 * np.clip(t, 0.0, 1.0)  # NaN stays NaN: dropped from the percentiles
    if used["human"] > 0:
        total += used["human"] * (np.clip(human, 0.0, 100.0) if human is not None else point.components["human"])
    return total


def group_intervals(row: Mapping[str, Any], latency: np.ndarray, cost: np.ndarray, clip: np.ndarray, *,
                    config: BootstrapConfig, weights: CompositeWeights, clip_anchor: Anchors,
                    human_fit: Mapping[str, Any] | None, tie_param: float,
                    draws_out: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """The interval keys of one report row (model, or model x niche) from its jobs;
    ``draws_out`` (when given) receives the per-draw cost, p95 and clip arrays behind them."""
    out: dict[str, Any] = {key: None for key in CI_KEYS.values()}
    out["ci_jobs"] = int(len(latency))
    if config.resamples == 0 or len(latency) == 0:
        return out
    rng = group_rng(config.seed, row["model"], row.get("niche", "*"))
    stats = bootstrap_stats(latency, cost, clip, rng, config.resamples)
    if draws_out is not None:
        draws_out.update(stats)
    human = human_draws(rng, human_fit, tie_param, config.resamples)
    # a constant cost (API price + fee) has a degenerate distribution: say so exactly, not
    # with the last-bit noise of 1000 float means
    out["cost_per_image_usd_ci"] = ([float(cost[0])] * 2 if np.all(cost == cost[0])
                                    else percentile_interval(stats["cost"]))
    out["p95_latency_ms_ci"] = percentile_interval(stats["p95"])
    out["clip_ci"] = percentile_interval(stats["clip"])
    comp = composite_draws(row, stats["clip"], human, weights, clip_anchor)
    out["composite_ci"] = None if comp is None else percentile_interval(comp)
    return out
