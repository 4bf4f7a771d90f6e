"""Bootstrap intervals of the benchmark (reports/intervals.py), pure: no stack."""

from __future__ import annotations

import zlib

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

from sentinel.composite import Anchors, CompositeWeights, combine
from sentinel.human import expected_score
from reports.intervals import job_samples, rate_params
from sentinel.bootstrap import BootstrapConfig, group_intervals

WEIGHTS = CompositeWeights()
ANCHOR = Anchors(fid_best=0.0, fid_worst=1.0, clip_floor=0.0, clip_ceiling=100.0)
FIT = {"strength": 0.4, "stderr": 0.08}
TIE = 0.3


def _jobs(n: int = 80, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    latency = np.round(rng.lognormal(7.0, 0.8, n))
    cost = 0.002 + rng.gamma(2.0, 0.0005, n)
    clip = rng.normal(25.0, 4.0, n)
    clip[::9] = np.nan  # unscored jobs
    return latency, cost, clip


def _row(latency: np.ndarray, cost: np.ndarray, clip: np.ndarray, *, fid_score: float | None = 40.0,
         human: float | None = None) -> dict:
    """A report row with the point estimates the report computes (numpy here)."""
    row = {"model": "m1", "niche": "product", "jobs": len(latency), "fid_score": fid_score,
           "clip": float(np.nanmean(clip)) if np.isfinite(clip).any() else None, "human": human, "cost_per_image_usd": float(cost.mean()),
           "p95_latency_ms": float(np.percentile(latency, 95))}
    row["composite"] = combine({"fid": fid_score, "clip": row["clip"], "human": human}, WEIGHTS).composite
    return row


def _intervals(row: dict, latency, cost, clip, seed: int = 7, resamples: int = 1000, fit=FIT) -> dict:
    return group_intervals(row, latency, cost, clip, config=BootstrapConfig(resamples=resamples, seed=seed),
                           weights=WEIGHTS, clip_anchor=ANCHOR, human_fit=fit, tie_param=TIE)


def test_same_seed_same_intervals_other_seed_other_intervals() -> None:
    latency, cost, clip = _jobs()
    human = float(100 * expected_score(FIT["strength"], TIE))
    row = _row(latency, cost, clip, human=human)
    a, b = _intervals(row, latency, cost, clip, seed=7), _intervals(row, latency, cost, clip, seed=7)
    c = _intervals(row, latency, cost, clip, seed=8)
    keys = ("composite_ci", "cost_per_image_usd_ci", "p95_latency_ms_ci", "clip_ci")
    assert all(a[k] is not None for k in keys)
    assert [a[k] for k in keys] == [b[k] for k in keys]
    assert all(a[k] != c[k] for k in keys)
    # the stream is the group's: another model (same data, same seed) gets other draws
    other = _intervals({**row, "model": "m2"}, latency, cost, clip, seed=7)
    assert other["cost_per_image_usd_ci"] != a["cost_per_image_usd_ci"]


def test_intervals_contain_the_point_estimates() -> None:
    latency, cost, clip = _jobs(n=120, seed=3)
    human = float(100 * expected_score(FIT["strength"], TIE))
    row = _row(latency, cost, clip, human=human)
    out = _intervals(row, latency, cost, clip)
    for key in ("composite", "cost_per_image_usd", "p95_latency_ms", "clip"):
        lo, hi = out[f"{key}_ci"]
        assert lo <= row[key] <= hi, key
        assert lo < hi, key
    assert out["ci_jobs"] == 120


def test_equals_an_independent_numpy_bootstrap_and_scipy() -> None:
    """The documented algorithm written out: rng from (seed, crc32(model NUL niche)), one
    (B, n) integer draw, statistics per row, then B normal draws for the human score;
    percentile interval with numpy's linear percentile. Cost and p95 also against scipy."""
    latency, cost, clip = _jobs(n=61, seed=11)
    human = float(100 * expected_score(FIT["strength"], TIE))
    row = _row(latency, cost, clip, human=human)
    seed, b = 5, 1000
    out = _intervals(row, latency, cost, clip, seed=seed, resamples=b)

    rng = np.random.default_rng([seed, zlib.crc32(b"m1\0product")])
    idx = rng.integers(0, len(latency), (b, len(latency)))
    mean_cost = cost[idx].mean(axis=1)
    p95 = np.array([np.percentile(latency[i], 95) for i in idx])
    clip_b = np.array([np.nanmean(clip[i]) for i in idx])
    human_b = 100 * expected_score(rng.normal(FIT["strength"], FIT["stderr"], b), TIE)
    comp_b = 0.4 * 40.0 + 0.3 * clip_b + 0.3 * human_b  # all components present: weights as configured
    for key, draws in (("cost_per_image_usd_ci", mean_cost), ("p95_latency_ms_ci", p95), ("clip_ci", clip_b),
                       ("composite_ci", comp_b)):
        assert out[key] == pytest.approx(list(np.percentile(draws, [2.5, 97.5])), rel=1e-12), key

    for key, statistic in (("cost_per_image_usd_ci", lambda a, axis: np.mean(a, axis=axis)),
                           ("p95_latency_ms_ci", lambda a, axis: np.percentile(a, 95, axis=axis))):
        data = cost if key.startswith("cost") else latency
        ref = stats.bootstrap((data,), statistic, n_resamples=b, method="percentile", vectorized=True,
                              rng=np.random.default_rng([seed, zlib.crc32(b"m1\0product")]))
        ci = ref.confidence_interval
        assert out[key] == pytest.approx([ci.low, ci.high], rel=1e-12), key


def test_human_only_composite_interval_is_the_fits_wald_interval() -> None:
    """With only the human component present the composite interval is the human draw's:
    theta ~ N(theta, se) mapped through the expected score — the fit's own 95% interval."""
    latency, cost, _ = _jobs(n=40)
    clip = np.full(40, np.nan)
    human = float(100 * expected_score(FIT["strength"], TIE))
    row = _row(latency, cost, clip, fid_score=None, human=human)
    assert row["clip"] is None and row["composite"] == pytest.approx(human)
    out = _intervals(row, latency, cost, clip, resamples=40_000)
    z = stats.norm.ppf(0.975)
    wald = [100 * expected_score(FIT["strength"] + s * z * FIT["stderr"], TIE) for s in (-1, 1)]
    assert out["composite_ci"] == pytest.approx(wald, abs=0.15)
    assert out["clip_ci"] is None


def test_fid_is_held_fixed_and_missing_components_renormalize() -> None:
    latency, cost, clip = _jobs()
    row = _row(latency, cost, clip, fid_score=40.0, human=None)  # no ratings: fid 0.4/0.7, clip 0.3/0.7
    out = _intervals(row, latency, cost, clip, fit=None)
    expected = [(0.4 * 40.0 + 0.3 * v) / 0.7 for v in out["clip_ci"]]
    assert out["composite_ci"] == pytest.approx(expected, rel=1e-12)


def test_constant_cost_and_disabled_and_empty() -> None:
    latency, _, clip = _jobs()
    cost = np.full(len(latency), 0.042)
    row = _row(latency, cost, clip)
    assert _intervals(row, latency, cost, clip)["cost_per_image_usd_ci"] == [0.042, 0.042]
    off = _intervals(row, latency, cost, clip, resamples=0)
    assert off["composite_ci"] is off["p95_latency_ms_ci"] is off["cost_per_image_usd_ci"] is None
    empty = _intervals(row, np.empty(0), np.empty(0), np.empty(0))
    assert empty["ci_jobs"] == 0 and empty["composite_ci"] is None


def test_percentile_bootstrap_of_the_mean_covers_about_95_percent() -> None:
    """Coverage sanity: over 300 lognormal samples of 200 jobs the 95% interval of mean cost
    contains the true mean about 95% of the time (percentile bootstrap is a bit under on
    skewed data)."""
    true_mean = float(np.exp(0.5 * 0.6**2))
    gen = np.random.default_rng(2024)
    hits = 0
    for trial in range(300):
        cost = gen.lognormal(0.0, 0.6, 200)
        latency, clip = np.ones(200), np.full(200, np.nan)
        row = {"model": "m", "niche": str(trial), "clip": None, "fid_score": None, "human": None, "composite": None,
               "cost_per_image_usd": float(cost.mean()), "p95_latency_ms": 1.0}
        lo, hi = group_intervals(row, latency, cost, clip, config=BootstrapConfig(resamples=400, seed=trial),
                                 weights=WEIGHTS, clip_anchor=ANCHOR, human_fit=None,
                                 tie_param=TIE)["cost_per_image_usd_ci"]
        hits += lo <= true_mean <= hi
    assert 0.89 <= hits / 300 <= 0.99


class _FakeReader:
    def __init__(self, table: pa.Table) -> None:
        self.table, self.params = table, None

    def query(self, text: str, parameters=None) -> pa.Table:
        if "system.tables" in text:  # reports.rollups asking for the 0012 tables: a store without them
            return pa.table({"n": pa.array([0], pa.uint64())})
        assert "row_number() OVER" in text  # bootstrap_jobs.sql
        self.params = parameters
        return self.table


def test_job_samples_groups_rows_by_their_sample_flags() -> None:
    table = pa.table({
        "model": ["a", "a", "a", "b"], "niche": ["x", "x", "y", "x"],
        "latency_ms": [1.0, 2.0, 3.0, 4.0], "cost_usd": [0.1, 0.2, 0.3, 0.4],
        "clip": pa.array([10.0, None, 30.0, 40.0], pa.float64()),
        "in_model": pa.array([1, 0, 1, 1], pa.uint8()), "in_niche": pa.array([1, 1, 1, 1], pa.uint8()),
    })
    reader = _FakeReader(table)
    groups = job_samples(reader, {"start": "s"}, max_jobs=2)
    assert reader.params == {"start": "s", "max_jobs": 2, "models": [], "model_rates": [], "groups": [],
                             "group_rates": []}
    assert set(groups) == {("a", "*"), ("a", "x"), ("a", "y"), ("b", "*"), ("b", "x")}
    assert groups[("a", "*")]["latency"].tolist() == [1.0, 3.0]
    assert groups[("a", "x")]["latency"].tolist() == [1.0, 2.0]
    np.testing.assert_array_equal(groups[("a", "x")]["clip"], [10.0, np.nan])
    assert groups[("b", "*")]["cost"].tolist() == [0.4]


def test_prefilter_rates_only_for_groups_larger_than_the_cap() -> None:
    params = rate_params({("a", "*"): 100_000, ("a", "x"): 50, ("a/b", "c"): 40_000, ("a", "b/c"): 20_000}, 5_000)
    assert params["models"] == ["a"] and params["model_rates"] == [pytest.approx((5_000 + 4 * 5_000**0.5 + 10) / 1e5)]
    # 'a/b' + 'c' and 'a' + 'b/c' share the key 'a/b/c': the larger rate wins, no sample comes up short
    assert params["groups"] == ["a/b/c"] and params["group_rates"] == [pytest.approx((5_000 + 4 * 5_000**0.5 + 10) / 2e4)]
