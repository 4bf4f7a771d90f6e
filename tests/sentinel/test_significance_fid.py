"""FID bootstrap draws (sentinel.significance_fid): each raw draw is the FID of its resampled
rows (recomputed here with scipy.linalg.sqrtm), the scaled draws' spread matches FID's sampling
spread measured by Monte Carlo, and FID orderings are separated only when the sets differ."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from sentinel.fid import FeatureMoments
from sentinel.significance import rank_scope
from sentinel.significance_fid import fid_draws, fid_raw_draws

D = 8


def _fid(x: np.ndarray, ref: np.ndarray) -> float:
    mu1, mu2 = x.mean(0), ref.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(ref, rowvar=False)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2) - 2 * np.trace(linalg.sqrtm(s1 @ s2)).real)


def _ref(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 1.0, (2000, D))


@pytest.mark.parametrize("n, m", [(60, 40), (30, 64)])  # m < n, and a sample smaller than max_sample
def test_raw_draws_are_the_fid_of_the_resampled_rows(n: int, m: int) -> None:
    ref = _ref()
    x = np.random.default_rng(1).normal(0.3, 1.2, (n, D))
    raw = fid_raw_draws(x, FeatureMoments.from_features(ref), np.random.default_rng(7), 6, max_sample=m)
    idx = np.random.default_rng(7).integers(0, n, size=(6, min(m, n)))
    np.testing.assert_allclose(raw, [_fid(x[i], ref) for i in idx], rtol=1e-7)


def test_small_sample_against_wide_features() -> None:
    """m < D: the m x m Gram path."""
    ref = np.random.default_rng(0).normal(0.0, 1.0, (500, 40))
    x = np.random.default_rng(1).normal(0.1, 1.0, (30, 40))
    raw = fid_raw_draws(x, FeatureMoments.from_features(ref), np.random.default_rng(3), 4, max_sample=20)
    idx = np.random.default_rng(3).integers(0, 30, size=(4, 20))
    np.testing.assert_allclose(raw, [_fid(x[i], ref) for i in idx], rtol=1e-7)


def test_scaled_draws_match_the_sampling_spread_of_fid() -> None:
    ref = _ref()
    moments = FeatureMoments.from_features(ref)
    n = 400
    truth = np.random.default_rng(11)
    sampled = [_fid(truth.normal(0.3, 1.2, (n, D)), ref) for _ in range(300)]  # FID's real spread at n
    x = np.random.default_rng(12).normal(0.3, 1.2, (n, D))
    point = _fid(x, ref)
    draws = fid_draws(x, moments, point, n, np.random.default_rng(13), 1000, max_sample=128)
    assert draws.mean() == pytest.approx(point)
    assert 0.7 < draws.std() / np.std(sampled) < 1.4, (draws.std(), np.std(sampled))


def test_fid_differences_are_calibrated_and_a_clearly_better_set_leads() -> None:
    """Two sets drawn alike: their FID difference, in units of the draws' claimed spread, has
    standard deviation ~1 over 100 simulations (so P(a better) is a calibrated bootstrap
    probability); a set drawn like the reference leads outright in at least 19 of 20."""
    ref = _ref()
    moments = FeatureMoments.from_features(ref)
    z, leads = [], 0
    for sim in range(100):
        rng = np.random.default_rng([sim, 5])
        sets = {"a": rng.normal(0.3, 1.2, (300, D)), "b": rng.normal(0.3, 1.2, (300, D)),
                "c": rng.normal(0.0, 1.0, (300, D))}  # c: drawn like the reference
        point = {name: _fid(x, ref) for name, x in sets.items()}
        draws = {name: fid_draws(x, moments, point[name], 300, np.random.default_rng([sim, k]), 400, 128)
                 for k, (name, x) in enumerate(sets.items())}
        z.append((point["a"] - point["b"]) / np.sqrt(draws["a"].var() + draws["b"].var()))
        if sim < 20:
            leads += rank_scope({"fid": draws})["dimensions"]["fid"]["ranks"]["c"] == [1, 1]
    assert 0.8 < np.std(z) < 1.25, np.std(z)
    assert leads >= 19, leads
