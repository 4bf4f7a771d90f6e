"""CMMD checked against an explicit double loop; the reservoir checked for uniformity and merging."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sentinel.cmmd import SCALE, SIGMA, EmbeddingReservoir, cmmd, mmd2_biased, mmd2_unbiased


def _k(a: np.ndarray, b: np.ndarray, sigma: float) -> float:
    return math.exp(-float(np.sum((a - b) ** 2)) / (2.0 * sigma * sigma))


def _loop_mmd2(x: np.ndarray, y: np.ndarray, sigma: float, unbiased: bool) -> float:
    """Gretton et al. 2012: U-statistic (i != j) or V-statistic (all pairs), by plain loops."""
    m, n = len(x), len(y)
    sxx = sum(_k(x[i], x[j], sigma) for i in range(m) for j in range(m) if not unbiased or i != j)
    syy = sum(_k(y[i], y[j], sigma) for i in range(n) for j in range(n) if not unbiased or i != j)
    sxy = sum(_k(x[i], y[j], sigma) for i in range(m) for j in range(n))
    dxx, dyy = (m * (m - 1), n * (n - 1)) if unbiased else (m * m, n * n)
    return sxx / dxx + syy / dyy - 2.0 * sxy / (m * n)


def _unit(rng: np.random.Generator, n: int, d: int, shift: float = 0.0) -> np.ndarray:
    x = rng.normal(size=(n, d)) + shift
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_constants_are_the_papers() -> None:
    assert SIGMA == 10.0 and SCALE == 1000.0


@pytest.mark.parametrize("sigma", [SIGMA, 0.7])
def test_mmd2_matches_double_loop(sigma: float) -> None:
    rng = np.random.default_rng(0)
    x, y = _unit(rng, 13, 8), _unit(rng, 17, 8, shift=0.5)
    assert mmd2_unbiased(x, y, sigma) == pytest.approx(_loop_mmd2(x, y, sigma, True), rel=1e-9, abs=1e-15)
    assert mmd2_biased(x, y, sigma) == pytest.approx(_loop_mmd2(x, y, sigma, False), rel=1e-9, abs=1e-15)
    expected = SCALE * _loop_mmd2(x, y, SIGMA, True)
    assert cmmd(x, y) == pytest.approx(expected, rel=1e-9)
    assert cmmd(x, y, unbiased=False) == pytest.approx(SCALE * _loop_mmd2(x, y, SIGMA, False), rel=1e-9)


def test_cmmd_separates_distributions_and_is_unbiased_for_equal_ones() -> None:
    rng = np.random.default_rng(1)
    same = [cmmd(_unit(rng, 60, 16), _unit(rng, 60, 16)) for _ in range(30)]
    shifted = cmmd(_unit(rng, 60, 16), _unit(rng, 60, 16, shift=0.6))
    assert abs(np.mean(same)) < 3 * np.std(same) / np.sqrt(len(same)) + 1e-12  # mean ~ 0, not > 0
    assert min(same) < 0 < shifted  # the U-statistic can go negative; a real gap does not
    assert shifted > 10 * np.std(same)


def test_mmd_needs_two_samples() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        mmd2_unbiased(np.ones((1, 3)), np.ones((4, 3)))
    with pytest.raises(ValueError):
        mmd2_unbiased(np.ones((3, 3)), np.ones((4, 2)))


def _reservoir(stream: np.ndarray, capacity: int, seed: int, batch: int) -> EmbeddingReservoir:
    r = EmbeddingReservoir(capacity, seed)
    for start in range(0, len(stream), batch):
        r.update(stream[start : start + batch])
    return r


def test_reservoir_is_deterministic_and_batching_invariant() -> None:
    stream = np.random.default_rng(2).normal(size=(500, 6))
    a = _reservoir(stream, 40, seed=5, batch=1)
    b = _reservoir(stream, 40, seed=5, batch=77)
    c = _reservoir(stream, 40, seed=6, batch=77)
    assert a.n_seen == 500 and a.samples.shape == (40, 6)
    np.testing.assert_array_equal(a.samples, b.samples)
    assert not np.array_equal(a.samples, c.samples)
    # every kept row is a row of the stream
    assert all(any(np.array_equal(row, s) for s in stream) for row in a.samples)


def test_reservoir_inclusion_is_uniform() -> None:
    n, k, trials = 30, 6, 1500
    stream = np.arange(n, dtype=np.float64)[:, None]
    hits = np.zeros(n)
    for seed in range(trials):
        hits[_reservoir(stream, k, seed, batch=n).samples[:, 0].astype(int)] += 1
    p = k / n
    # each item kept with probability k/n: within 5 binomial standard deviations
    assert np.all(np.abs(hits / trials - p) < 5 * math.sqrt(p * (1 - p) / trials))


def test_merge_is_a_uniform_sample_of_the_union_weighted_by_counts() -> None:
    na, nb, k, trials = 30, 10, 8, 1500
    stream = np.arange(na + nb, dtype=np.float64)[:, None]
    hits = np.zeros(na + nb)
    from_a = []
    for seed in range(trials):
        a = _reservoir(stream[:na], k, 2 * seed, batch=na)
        b = _reservoir(stream[na:], k, 2 * seed + 1, batch=nb)
        merged = a.merge(b)
        assert merged.n_seen == na + nb and len(merged.samples) == k
        ids = merged.samples[:, 0].astype(int)
        assert len(set(ids.tolist())) == k
        hits[ids] += 1
        from_a.append(int(np.sum(ids < na)))
    p = k / (na + nb)
    assert np.all(np.abs(hits / trials - p) < 5 * math.sqrt(p * (1 - p) / trials))
    assert np.mean(from_a) == pytest.approx(k * na / (na + nb), abs=0.15)  # hypergeometric mean 6


def test_merge_is_commutative_and_keeps_everything_under_capacity() -> None:
    rng = np.random.default_rng(4)
    a = _reservoir(rng.normal(size=(50, 3)), 20, 1, batch=50)
    b = _reservoir(rng.normal(size=(70, 3)), 20, 2, batch=70)
    ab, ba = a.merge(b), b.merge(a)
    np.testing.assert_array_equal(ab.samples, ba.samples)
    assert ab.seed == ba.seed

    small_x, small_y = rng.normal(size=(5, 3)), rng.normal(size=(7, 3))
    small = _reservoir(small_x, 20, 1, 5).merge(_reservoir(small_y, 20, 2, 7))
    assert small.n_seen == 12
    assert sorted(map(tuple, small.samples)) == sorted(map(tuple, np.concatenate([small_x, small_y])))
    assert EmbeddingReservoir(20).merge(a).n_seen == 50
    with pytest.raises(ValueError, match="capacity"):
        a.merge(EmbeddingReservoir(21))
    # a merged reservoir keeps streaming with Algorithm R
    ab.update(rng.normal(size=(30, 3)))
    assert ab.n_seen == 150 and len(ab.samples) == 20


@pytest.mark.parametrize("encoding", ["b64", "list"])
def test_reservoir_round_trip(encoding: str) -> None:
    r = EmbeddingReservoir.for_key("flux-dev|headshot|2026-01-05T09", 16)
    r.update(np.random.default_rng(5).normal(size=(40, 4)))
    data = json.loads(json.dumps(r.to_dict(encoding=encoding)))
    back = EmbeddingReservoir.from_dict(data)
    assert (back.capacity, back.seed, back.n_seen) == (r.capacity, r.seed, r.n_seen)
    np.testing.assert_array_equal(back.samples, r.samples)
    more = np.random.default_rng(6).normal(size=(25, 4))
    back.update(more)
    r.update(more)
    np.testing.assert_array_equal(back.samples, r.samples)  # the state is the whole RNG story
    empty = EmbeddingReservoir.from_dict(EmbeddingReservoir(3).to_dict())
    assert empty.samples is None and empty.n_seen == 0


def test_cmmd_on_reservoirs_equals_arrays_when_nothing_was_dropped() -> None:
    rng = np.random.default_rng(8)
    x, y = _unit(rng, 30, 8), _unit(rng, 25, 8, shift=0.3)
    rx, ry = _reservoir(x, 64, 0, 10), _reservoir(y, 64, 1, 10)
    assert cmmd(rx, ry) == pytest.approx(SCALE * _loop_mmd2(x, y, SIGMA, True), rel=1e-9)
