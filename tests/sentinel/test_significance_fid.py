"""FID bootstrap draws (sentinel.significance_fid): the influence values equal a numerical
derivative of FID (scipy.linalg.sqrtm) along the mixture that adds one image; the draws'
spread matches FID's sampling spread measured by Monte Carlo; differences of like sets are
calibrated and a set drawn like the reference leads outright."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from sentinel.fid import FeatureMoments
from sentinel.significance import rank_scope
from sentinel.significance_fid import fid_draws, fid_influence


def _fid(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2) - 2 * np.trace(linalg.sqrtm(s1 @ s2)).real)


def _fid_of(x: np.ndarray, ref: np.ndarray) -> float:
    return _fid(x.mean(0), np.cov(x, rowvar=False), ref.mean(0), np.cov(ref, rowvar=False))


def _gen(d: int, seed: int = 0):
    a = np.random.default_rng(seed).normal(size=(d, d)) / np.sqrt(d)
    return lambda rng, k, shift: (rng.normal(size=(k, d)) @ a.T) * (1 + shift) + shift


def test_influence_is_the_derivative_of_fid_when_one_image_is_added() -> None:
    d = 6
    gen = _gen(d)
    x, ref = gen(np.random.default_rng(1), 300, 0.3), gen(np.random.default_rng(2), 900, 0.0)
    g, r = FeatureMoments.from_features(x), FeatureMoments.from_features(ref)
    mu, s = g.compute()
    mu_r, s_r = r.compute()
    probes = gen(np.random.default_rng(3), 5, 0.5)
    phi = fid_influence(probes, g, r)

    def mixture(eps: float, z: np.ndarray) -> float:  # (1 - eps)·N(mu, S) + eps·delta_z
        m = (1 - eps) * mu + eps * z
        cov = (1 - eps) * (s + np.outer(mu, mu)) + eps * np.outer(z, z) - np.outer(m, m)
        return _fid(m, cov, mu_r, s_r)

    h = 1e-5
    numeric = [(mixture(h, z) - mixture(-h, z)) / (2 * h) for z in probes]
    np.testing.assert_allclose(phi, numeric, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("d, shift", [(8, 0.3), (32, 0.2)])
def test_draws_match_the_sampling_spread_of_fid(d: int, shift: float) -> None:
    gen = _gen(d)
    ref = gen(np.random.default_rng(1), 4000, 0.0)
    r = FeatureMoments.from_features(ref)
    n = 800
    truth = np.random.default_rng(2)
    sampled = [_fid_of(gen(truth, n, shift), ref) for _ in range(150)]  # FID's real spread at n images
    x = gen(np.random.default_rng(3), n, shift)
    point = _fid_of(x, ref)
    draws = fid_draws(x[:300], FeatureMoments.from_features(x), r, point, np.random.default_rng(4), 1000)
    assert draws.mean() == pytest.approx(point, abs=0.1 * draws.std())
    assert 0.8 < draws.std() / np.std(sampled) < 1.25, (draws.std(), np.std(sampled))


def test_fid_differences_are_calibrated_and_a_set_like_the_reference_leads() -> None:
    """Two sets drawn alike: their FID difference, in units of the draws' spread, has standard
    deviation ~1 over 100 simulations (a calibrated P(a better)); a set drawn like the
    reference leads outright in at least 19 of 20."""
    d = 8
    gen = _gen(d)
    ref = gen(np.random.default_rng(1), 4000, 0.0)
    r = FeatureMoments.from_features(ref)
    z, leads = [], 0
    for sim in range(100):
        rng = np.random.default_rng([sim, 5])
        sets = {"a": gen(rng, 400, 0.3), "b": gen(rng, 400, 0.3), "c": gen(rng, 400, 0.0)}
        point = {k: _fid_of(x, ref) for k, x in sets.items()}
        draws = {k: fid_draws(x, FeatureMoments.from_features(x), r, point[k], np.random.default_rng([sim, i]), 400)
                 for i, (k, x) in enumerate(sets.items())}
        z.append((point["a"] - point["b"]) / np.sqrt(draws["a"].var() + draws["b"].var()))
        if sim < 20:
            leads += rank_scope({"fid": draws})["dimensions"]["fid"]["ranks"]["c"] == [1, 1]
    assert 0.8 < np.std(z) < 1.25, np.std(z)
    assert leads >= 19, leads


def test_bad_shapes_are_refused() -> None:
    g = FeatureMoments.from_features(np.random.default_rng(0).normal(size=(20, 4)))
    with pytest.raises(ValueError, match=r"\[n, 4\]"):
        fid_influence(np.zeros((3, 5)), g, g)
    with pytest.raises(ValueError, match="at least 2"):
        fid_draws(np.zeros((1, 4)), g, g, 1.0, np.random.default_rng(0), 10)
