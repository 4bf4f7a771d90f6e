"""Per-niche Bradley–Terry (sentinel.human.fit_niches): equal to a direct maximum-likelihood fit
written here, planted per-niche orders recovered, the pooled order not mistaken for either,
the too-few-ratings rule, and the joint Human draws."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats

from sentinel.human import DEFAULT_RIDGE, PairwiseCounts, fit_bradley_terry, fit_niches, score_draws, too_few_note

MODELS = ["m0", "m1", "m2", "m3"]
# niche -> planted log-strengths: headshot m0 > m1 > m2 > m3, portrait the reverse (with other
# gaps, so the pooled order is neither)
PLANTED = {"headshot": np.array([1.5, 0.5, -0.5, -1.5]), "portrait": np.array([-1.5, -1.0, 1.0, 1.5])}
NU = 0.4


def _ratings(seed: int, per_pair: int) -> list[tuple[str, str, str, str]]:
    """(niche, model shown as a, model shown as b, winner) from Davidson's model, order random."""
    rng = np.random.default_rng(seed)
    out = []
    for niche, theta in PLANTED.items():
        for i in range(len(MODELS)):
            for j in range(i + 1, len(MODELS)):
                pi, pj = np.exp(theta[i]), np.exp(theta[j])
                tie = NU * np.sqrt(pi * pj)
                for outcome in rng.choice(3, size=per_pair, p=np.array([pi, pj, tie]) / (pi + pj + tie)):
                    flip = rng.random() < 0.5
                    a, b = (MODELS[j], MODELS[i]) if flip else (MODELS[i], MODELS[j])
                    winner = "tie" if outcome == 2 else ("a" if (outcome == 0) != flip else "b")
                    out.append((niche, a, b, winner))
    return out


def _counts(ratings, niche=None) -> PairwiseCounts:
    c = PairwiseCounts()
    for n, a, b, w in ratings:
        if niche is None or n == niche:
            c.update(a, b, w)
    return c


def _direct_fit(ratings, models: list[str]) -> tuple[np.ndarray, float]:
    """Penalized MLE written out rating by rating: P(a wins) = pi_a / D, P(tie) = nu sqrt(pi_a
    pi_b) / D, D = pi_a + pi_b + nu sqrt(pi_a pi_b), with the documented ridge/2 (|theta|² +
    log(nu)²); BFGS on numeric gradients, then theta centred to sum 0."""
    idx = {m: k for k, m in enumerate(models)}
    a = np.array([idx[r[1]] for r in ratings])
    b = np.array([idx[r[2]] for r in ratings])
    w = np.array([r[3] for r in ratings])

    def nll(p: np.ndarray) -> float:
        theta, nu = p[:-1], np.exp(p[-1])
        pa, pb = np.exp(theta[a]), np.exp(theta[b])
        d = pa + pb + nu * np.sqrt(pa * pb)
        prob = np.where(w == "a", pa, np.where(w == "b", pb, nu * np.sqrt(pa * pb))) / d
        return float(-np.sum(np.log(prob)) + DEFAULT_RIDGE / 2 * p @ p)

    res = optimize.minimize(nll, np.zeros(len(models) + 1), method="BFGS", options={"gtol": 1e-9, "maxiter": 5000})
    theta = res.x[:-1]
    return theta - theta.mean(), float(np.exp(res.x[-1]))


def test_per_niche_fit_equals_a_direct_maximum_likelihood_fit() -> None:
    ratings = _ratings(seed=3, per_pair=60)
    fits = fit_niches({n: _counts(ratings, n) for n in PLANTED}, min_ratings=10)
    for niche in PLANTED:
        mine = [r for r in ratings if r[0] == niche]
        theta, nu = _direct_fit(mine, MODELS)
        fit = fits[niche]["fit"]
        np.testing.assert_allclose([fit.strength[m] for m in MODELS], theta, atol=1e-4)
        assert fit.tie_param == pytest.approx(nu, abs=1e-4)
        assert fits[niche]["ratings"] == len(mine) == 6 * 60
        assert fits[niche]["n"] == {m: 3 * 60 for m in MODELS}
        assert all(fits[niche]["enough"].values())


def test_planted_orders_that_reverse_between_niches() -> None:
    ratings = _ratings(seed=11, per_pair=300)
    fits = fit_niches({n: _counts(ratings, n) for n in PLANTED})
    orders = {}
    for niche, truth in PLANTED.items():
        fit = fits[niche]["fit"]
        est = [fit.strength[m] for m in MODELS]
        tau, _ = stats.kendalltau(est, truth)
        assert tau >= 0.9, (niche, est)
        orders[niche] = fit.ranking()
        assert all(fit.pair_n[(a, b)] == 300 for a in MODELS for b in MODELS if a < b)
    pooled = fit_bradley_terry(_counts(ratings))
    pooled_est = [pooled.strength[m] for m in MODELS]
    for niche, truth in PLANTED.items():
        tau, _ = stats.kendalltau(pooled_est, truth)
        assert tau < 0.9, (niche, pooled_est)
        assert pooled.ranking() != orders[niche]


def test_too_few_ratings_rule() -> None:
    c = PairwiseCounts()
    for _ in range(20):
        c.update("m0", "m1", "a")
        c.update("m1", "m0", "tie")
    for _ in range(4):
        c.update("m2", "m0", "b")
    h = fit_niches({"product": c, "empty": PairwiseCounts()}, min_ratings=30)
    assert h["product"]["n"] == {"m0": 44, "m1": 40, "m2": 4}
    assert h["product"]["enough"] == {"m0": True, "m1": True, "m2": False}
    assert h["empty"]["fit"] is None and h["empty"]["enough"] == {}
    assert too_few_note(4) == "too few ratings: n=4"
    with pytest.raises(ValueError):
        fit_niches({"product": c}, min_ratings=0)


def test_joint_score_draws_keep_the_fit_covariance() -> None:
    """Two models of one fit: theta_1 = -theta_0, so the draws' strengths are perfectly
    anti-correlated and the difference has twice the marginal spread (independent draws would
    give sqrt 2)."""
    fit = fit_bradley_terry(_counts([r for r in _ratings(5, 80) if r[1] in ("m0", "m1") and r[2] in ("m0", "m1")]))
    d = score_draws(fit.to_dict(), np.random.default_rng(0), 20_000)
    h = fit.to_dict()["models"]
    # the score is monotone in theta: back out theta from the draws through the expected score
    nu = fit.tie_param
    grid = np.linspace(-6, 6, 20001)
    from sentinel.human import expected_score
    s = 100 * expected_score(grid, nu)
    t0, t1 = np.interp(d["m0"], s, grid), np.interp(d["m1"], s, grid)
    assert np.corrcoef(t0, t1)[0, 1] == pytest.approx(-1.0, abs=1e-3)
    assert np.std(t0 - t1) == pytest.approx(2 * h["m0"]["stderr"], rel=0.03)
    assert np.mean(t0) == pytest.approx(h["m0"]["strength"], abs=0.01)
