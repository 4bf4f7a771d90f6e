"""Simulated raters: deterministic, labelled simulated, and drawn from the planted strengths."""

from __future__ import annotations

import math

import numpy as np
import pytest

from inference.raters import davidson_probabilities, simulate_ratings, write_ratings
from sentinel.human import PairwiseCounts, fit_bradley_terry
from inference.ratings import parse_ratings, read_ratings_file

PLANTED = {"m-strong": 1.0, "m-mid": 0.0, "m-weak": -1.0}


def candidates(n_per_pair: int) -> list[tuple[str, str, str, str]]:
    models = sorted(PLANTED)
    out = []
    for i, a in enumerate(models):
        for b in models[i + 1:]:
            out += [(f"{a}-{b}-{k}-A", f"{a}-{b}-{k}-B", a, b) for k in range(n_per_pair)]
    return out


def test_deterministic_and_simulated(tmp_path) -> None:
    c = candidates(20)
    first = simulate_ratings(c, PLANTED, ratings_per_pair=2, raters=5, seed=3)
    assert first == simulate_ratings(c, PLANTED, ratings_per_pair=2, raters=5, seed=3)
    assert first != simulate_ratings(c, PLANTED, ratings_per_pair=2, raters=5, seed=4)
    assert len(first) == 2 * len(c) and len({r["rating_id"] for r in first}) == len(first)
    assert {r["rater"] for r in first} <= {f"sim-rater-{i}" for i in range(5)}
    per_pair = {}
    for r in first:
        per_pair.setdefault(frozenset((r["job_a"], r["job_b"])), []).append(r["rater"])
    assert all(len(set(v)) == 2 for v in per_pair.values()), "distinct raters per pair"
    # sides are swapped about half the time; the rows import cleanly
    swapped = sum(r["job_a"].endswith("-B") for r in first)
    assert 0.3 < swapped / len(first) < 0.7
    path = tmp_path / "sim.jsonl"
    assert write_ratings(first, path) == len(first)
    records, errors = read_ratings_file(path)
    assert errors == [] and len(records) == len(first)


def test_draws_follow_davidson_and_the_fit_recovers_the_planting() -> None:
    c = candidates(600)
    rows = simulate_ratings(c, PLANTED, tie_param=0.4, seed=11)
    model_of = {job: m for ja, jb, ma, mb in c for job, m in ((ja, ma), (jb, mb))}
    counts = PairwiseCounts()
    for r in rows:
        counts.update(model_of[r["job_a"]], model_of[r["job_b"]], r["winner"])
    # empirical outcome frequencies per unordered pair vs Davidson probabilities
    for (i, j), (wi, wj, t) in counts.unordered().items():
        n = wi + wj + t
        p_i, p_j, p_t = davidson_probabilities(PLANTED[i], PLANTED[j], 0.4)
        for observed, p in ((wi, p_i), (wj, p_j), (t, p_t)):
            assert abs(observed / n - p) < 4 * math.sqrt(p * (1 - p) / n), (i, j, observed, n, p)
    fit = fit_bradley_terry(counts)
    assert fit.ranking() == ["m-strong", "m-mid", "m-weak"]
    planted = np.array([PLANTED[m] for m in fit.models])
    got = np.array([fit.strength[m] for m in fit.models])
    np.testing.assert_allclose(got, planted - planted.mean(), atol=0.2)
    assert fit.tie_param == pytest.approx(0.4, abs=0.1)


def test_no_ties_when_tie_param_is_zero_and_bad_input() -> None:
    rows = simulate_ratings(candidates(30), PLANTED, tie_param=0.0)
    assert {r["winner"] for r in rows} <= {"a", "b"}
    with pytest.raises(KeyError, match="m-unknown"):
        simulate_ratings([("x", "y", "m-strong", "m-unknown")], PLANTED)
    with pytest.raises(ValueError, match="both jobs"):
        simulate_ratings([("x", "y", "m-mid", "m-mid")], PLANTED)
    records, errors = parse_ratings([])
    assert records == [] and errors == []
