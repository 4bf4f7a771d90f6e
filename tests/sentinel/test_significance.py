"""Pairwise bootstrap probabilities, Holm separations, shared ranks and leaders
(sentinel.significance) on simulated per-job samples, resampled by sentinel.bootstrap."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sentinel.bootstrap import bootstrap_stats, composite_draws, group_rng
from sentinel.composite import Anchors, CompositeWeights
from sentinel.significance import holm, leader_sentence, prob_better, rank_scope, rank_text

JOBS, RESAMPLES, SIMS = 400, 400, 100  # measured over 1000 sims: FWER 3.4% (4.7% at 150 jobs)
ANCHOR = Anchors(fid_best=0.0, fid_worst=1.0, clip_floor=0.0, clip_ceiling=100.0)
DIMS = ("clip", "composite", "cost_per_image_usd", "p95_latency_ms")


def _jobs(rng: np.random.Generator, clip: float, latency: float, gpu_s: float) -> tuple[np.ndarray, ...]:
    """Per-job latency (lognormal), cost (gamma GPU-seconds x price + fee) and CLIP (normal)."""
    return (rng.lognormal(np.log(latency), 0.4, JOBS), rng.gamma(4.0, gpu_s / 4.0, JOBS) * 0.0003 + 0.002,
            rng.normal(clip, 4.0, JOBS))


def _draws(sim: int, planted: dict[str, tuple[float, float, float]]) -> dict[str, dict[str, np.ndarray]]:
    """Each model's jobs drawn from its planted (clip, latency, gpu_s), then the report's
    bootstrap: job resamples (bootstrap_stats) and the composite of FID_score (fixed, equal) and CLIP."""
    data = np.random.default_rng([sim, 7])
    out: dict[str, dict[str, np.ndarray]] = {k: {} for k in DIMS}
    for model, params in planted.items():
        latency, cost, clip = _jobs(data, *params)
        s = bootstrap_stats(latency, cost, clip, group_rng(sim, model, "*"), RESAMPLES)
        row = {"fid_score": 60.0, "clip": float(clip.mean()), "human": None}
        out["clip"][model], out["cost_per_image_usd"][model], out["p95_latency_ms"][model] = s["clip"], s["cost"], s["p95"]
        out["composite"][model] = composite_draws(row, s["clip"], None, CompositeWeights(), ANCHOR)
    return out


def test_prob_better_counts_draws_and_halves_ties() -> None:
    a = np.array([1.0, 2.0, 3.0, 4.0, np.nan])
    b = np.array([0.0, 2.0, 5.0, 1.0, 1.0])
    assert prob_better(a, b, True) == pytest.approx((2 + 0.5) / 4)
    assert prob_better(a, b, False) == pytest.approx((1 + 0.5) / 4)
    assert prob_better(np.array([np.nan]), np.array([1.0]), True) is None
    with pytest.raises(ValueError):
        prob_better(a, b[:3], True)


def test_holm_step_down() -> None:
    # sorted: .005 <= .05/4, .01 <= .05/3, .03 > .05/2 -> stop (.04 not rejected either)
    assert holm([0.01, 0.04, 0.03, 0.005], 0.05) == [True, False, False, True]
    assert holm([0.2, 0.001], 0.05) == [False, True]
    assert holm([], 0.05) == []


def test_two_models_planted_equal_share_their_ranks() -> None:
    """Each dimension's ranks are shared ("1–2") in at least 95 of 100 simulations; over 400,
    any false separation in the scope (Holm's family-wise guarantee) in at most 5%."""
    shared = {k: 0 for k in DIMS}
    any_false = 0
    for sim in range(4 * SIMS):
        result = rank_scope(_draws(sim, {"a": (30.0, 800.0, 4.0), "b": (30.0, 800.0, 4.0)}))
        for k in DIMS:
            shared[k] += sim < SIMS and result["dimensions"][k]["ranks"] == {"a": [1, 2], "b": [1, 2]}
        any_false += bool(result["leads"])
    assert all(n >= 95 for n in shared.values()), shared
    assert any_false <= 0.05 * 4 * SIMS, any_false


def test_one_model_planted_clearly_better_leads_outright() -> None:
    leads = 0
    for sim in range(SIMS):
        result = rank_scope(_draws(sim, {"good": (33.0, 400.0, 2.4), "meh": (30.0, 800.0, 4.0)}))
        if result["leads"] == {"good": list(DIMS)} and all(
                result["dimensions"][k]["ranks"] == {"good": [1, 1], "meh": [2, 2]} for k in DIMS):
            leads += 1
    assert leads >= 95, leads


def test_shared_ranks_among_three_and_the_leader_sentence() -> None:
    rng = np.random.default_rng(0)
    # composite: x clearly above y and z, y and z equal; cost: all equal
    draws = {"composite": {"x": rng.normal(70, 1, 1000), "y": rng.normal(50, 1, 1000), "z": rng.normal(50, 1, 1000)},
             "cost_per_image_usd": {m: rng.normal(0.01, 0.001, 1000) for m in "xyz"},
             "human": {"x": rng.normal(60, 1, 1000), "y": None, "z": None}}
    result = rank_scope(draws)
    comp = result["dimensions"]["composite"]
    assert comp["ranks"] == {"x": [1, 1], "y": [2, 3], "z": [2, 3]} and comp["leader"] == "x"
    assert [rank_text(comp["ranks"][m]) for m in "xyz"] == ["1", "2–3", "2–3"]
    assert result["dimensions"]["cost_per_image_usd"]["leader"] is None
    assert "human" not in result["dimensions"]  # one model: nothing to rank
    assert result["tests"] == 6
    pairs = {(p["a"], p["b"]): p for p in comp["pairs"]}
    assert set(pairs) == set(itertools.combinations("xyz", 2))
    assert pairs[("x", "y")]["p_a_better"] == 1.0 and pairs[("x", "y")]["separated"]
    assert not pairs[("y", "z")]["separated"]
    assert leader_sentence("headshot", result) == \
        "headshot: x leads outright on composite; no outright leader on cost per image."
    tie = rank_scope({"composite": {"y": draws["composite"]["y"], "z": draws["composite"]["z"]}})
    assert leader_sentence("portrait", tie) == \
        "portrait: no model leads outright on any dimension (top ranks shared at 95%)."
    assert leader_sentence("product", rank_scope({})) == "product: fewer than two models to compare."
    assert rank_text(None) == "–"
