"""Bradley–Terry (Davidson ties) recovers planted strengths; fit checked against a direct MLE."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import optimize, stats

from sentinel.human import BTResult, PairwiseCounts, expected_score, fit_bradley_terry

MODELS = ["m0", "m1", "m2", "m3", "m4"]
TRUE_THETA = np.array([-1.0, -0.4, 0.1, 0.5, 0.8])
TRUE_THETA = TRUE_THETA - TRUE_THETA.mean()
TRUE_NU = 0.5


def _simulate(seed: int, per_pair: int = 500) -> PairwiseCounts:
    """Raters following Davidson's model; presentation order randomized per rating."""
    rng = np.random.default_rng(seed)
    counts = PairwiseCounts()
    for i in range(len(MODELS)):
        for j in range(i + 1, len(MODELS)):
            pi, pj = np.exp(TRUE_THETA[i]), np.exp(TRUE_THETA[j])
            tie = TRUE_NU * np.sqrt(pi * pj)
            probs = np.array([pi, pj, tie]) / (pi + pj + tie)
            outcomes = rng.choice(3, size=per_pair, p=probs)  # 0: i wins, 1: j wins, 2: tie
            flips = rng.random(per_pair) < 0.5
            for outcome, flip in zip(outcomes, flips):
                a, b = (MODELS[j], MODELS[i]) if flip else (MODELS[i], MODELS[j])
                winner = "tie" if outcome == 2 else ("a" if (outcome == 0) != flip else "b")
                counts.update(a, b, winner)
    return counts


@pytest.fixture(scope="module")
def planted() -> tuple[PairwiseCounts, BTResult]:
    counts = _simulate(0)
    return counts, fit_bradley_terry(counts)


def test_recovers_planted_order(planted) -> None:
    counts, result = planted
    assert result.converged and result.connected
    est = np.array([result.strength[m] for m in MODELS])
    tau, _ = stats.kendalltau(est, TRUE_THETA)
    assert tau >= 0.9
    assert result.ranking() == MODELS[::-1]
    assert abs(est.sum()) < 1e-9  # sum-zero normalization
    assert result.tie_param == pytest.approx(TRUE_NU, rel=0.25)
    assert all(result.pair_n[(a, b)] == 500 for a in MODELS for b in MODELS if a < b)
    assert all(result.n_per_model[m] == 2000 for m in MODELS)


def test_intervals_cover_the_truth() -> None:
    covered, total = 0, 0
    for seed in range(12):
        r = fit_bradley_terry(_simulate(100 + seed, per_pair=200))
        for m, truth in zip(MODELS, TRUE_THETA):
            assert r.ci_low[m] < r.strength[m] < r.ci_high[m]
            covered += r.ci_low[m] <= truth <= r.ci_high[m]
            total += 1
    assert covered / total >= 0.85  # nominal 95%


def _direct_nll(params: np.ndarray, counts: PairwiseCounts, ridge: float) -> float:
    """Davidson's likelihood written straight from its probabilities, per ordered record."""
    theta = dict(zip(MODELS, params[:-1]))
    nu = np.exp(params[-1])
    nll = ridge / 2.0 * float(np.sum(params**2))
    for (a, b), (wa, wb, t) in counts.pairs.items():
        pa, pb = np.exp(theta[a]), np.exp(theta[b])
        den = pa + pb + nu * np.sqrt(pa * pb)
        nll -= wa * np.log(pa / den) + wb * np.log(pb / den) + t * np.log(nu * np.sqrt(pa * pb) / den)
    return nll


def test_fit_matches_a_direct_optimization_and_hessian(planted) -> None:
    counts, result = planted
    ridge = result.ridge
    direct = optimize.minimize(_direct_nll, np.zeros(len(MODELS) + 1), args=(counts, ridge), method="BFGS",
                               options={"gtol": 1e-8})
    theta = direct.x[:-1] - direct.x[:-1].mean()
    np.testing.assert_allclose([result.strength[m] for m in MODELS], theta, atol=1e-4)
    assert result.tie_param == pytest.approx(np.exp(direct.x[-1]), rel=1e-4)

    # Standard errors: numeric Hessian of the direct NLL in a sum-zero parametrization.
    k = len(MODELS)
    basis = np.zeros((k + 1, k))
    basis[:k, : k - 1] = np.linalg.qr(np.eye(k) - 1.0 / k)[0][:, : k - 1]
    basis[k, k - 1] = 1.0
    beta0 = np.linalg.lstsq(basis, direct.x, rcond=None)[0]
    f = lambda beta: _direct_nll(basis @ beta, counts, ridge)  # noqa: E731
    h, step = np.zeros((k, k)), 1e-4
    for p in range(k):
        for q in range(k):
            e_p, e_q = np.eye(k)[p] * step, np.eye(k)[q] * step
            h[p, q] = (f(beta0 + e_p + e_q) - f(beta0 + e_p - e_q) - f(beta0 - e_p + e_q)
                       + f(beta0 - e_p - e_q)) / (4 * step * step)
    se = np.sqrt(np.diag(basis @ np.linalg.inv(h) @ basis.T))[:k]
    np.testing.assert_allclose([result.stderr[m] for m in MODELS], se, rtol=1e-3)
    z = stats.norm.ppf(0.975)
    assert result.ci_high["m2"] - result.ci_low["m2"] == pytest.approx(2 * z * result.stderr["m2"], rel=1e-9)


def test_score_is_expected_score_against_the_average_model(planted) -> None:
    _, result = planted
    nu = result.tie_param
    for m in MODELS:
        th = result.strength[m]
        pi = np.exp(th)
        den = pi + 1.0 + nu * np.sqrt(pi)
        assert result.score[m] == pytest.approx(100 * (pi / den + 0.5 * nu * np.sqrt(pi) / den), rel=1e-12)
        assert result.score_low[m] < result.score[m] < result.score_high[m]
        assert 0 < result.score_low[m] and result.score_high[m] < 100
    assert float(expected_score(0.0, nu)) == pytest.approx(0.5)


def test_zero_win_model_and_no_ties_stay_finite() -> None:
    counts = PairwiseCounts()
    for _ in range(40):
        counts.update("strong", "weak", "a")
        counts.update("mid", "weak", "a")
    for _ in range(20):
        counts.update("strong", "mid", "a")
        counts.update("mid", "strong", "a")
    r = fit_bradley_terry(counts)
    assert r.converged
    assert all(np.isfinite(v) for v in (*r.strength.values(), *r.stderr.values(), r.tie_param))
    assert r.ranking()[-1] == "weak"
    assert r.tie_param < 0.1
    json.dumps(r.to_dict())


def test_disconnected_comparisons_are_flagged() -> None:
    counts = PairwiseCounts()
    counts.update("a", "b", "a")
    counts.update("c", "d", "tie")
    assert not fit_bradley_terry(counts).connected


def test_counts_merge_fold_and_round_trip() -> None:
    a, b = PairwiseCounts(), PairwiseCounts()
    a.update("x", "y", "a")
    a.update("y", "x", "a")
    a.update("x", "y", "tie")
    b.update("y", "x", "b")
    b.update("x", "z", "b", count=3)
    merged = a.merge(b)
    assert merged.pairs[("y", "x")] == [1, 1, 0] and a.pairs[("y", "x")] == [1, 0, 0]  # merge is pure
    assert merged.unordered() == {("x", "y"): (2, 1, 1), ("x", "z"): (0, 3, 0)}
    assert merged.total == 7 and merged.models == ("x", "y", "z")

    data = json.loads(json.dumps(merged.to_dict()))
    assert data["v"] == 1
    assert PairwiseCounts.from_dict(data) == merged
    assert PairwiseCounts.from_dict(None) == PairwiseCounts()
    r1, r2 = fit_bradley_terry(merged), fit_bradley_terry(PairwiseCounts.from_dict(data))
    assert r1.strength == r2.strength

    with pytest.raises(ValueError):
        merged.update("x", "x", "a")
    with pytest.raises(ValueError):
        merged.update("x", "y", "left")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 2"):
        fit_bradley_terry(PairwiseCounts())
