"""Composite score: a hand-computed example, weight validation, anchors, missing components."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.linalg

from sentinel.composite import (Anchors, CompositeWeights, clip_component, composite_score, fid_anchors, fid_score,
                                split_reference)
from sentinel.fid import FeatureMoments

ANCHORS = Anchors(fid_best=10.0, fid_worst=110.0, clip_floor=20.0, clip_ceiling=40.0)


def test_hand_computed_example() -> None:
    # FID 35 -> (110-35)/100 = 75; CLIP 30 -> (30-20)/20 = 50; human 60.
    r = composite_score(fid=35.0, clip=30.0, human=60.0, anchors=ANCHORS)
    assert r.components == {"fid": 75.0, "clip": 50.0, "human": 60.0}
    assert r.composite == pytest.approx(0.4 * 75 + 0.3 * 50 + 0.3 * 60)  # 63.0
    assert r.composite == pytest.approx(63.0)
    assert r.missing == () and not r.renormalized
    assert r.weights_used == {"fid": 0.4, "clip": 0.3, "human": 0.3}
    json.dumps(r.to_dict())


def test_custom_weights_and_default_clip_anchors() -> None:
    plain = Anchors(fid_best=0.0, fid_worst=200.0)
    r = composite_score(fid=50.0, clip=31.0, human=80.0, anchors=plain,
                        weights=CompositeWeights(fid=0.5, clip=0.5, human=0.0))
    assert r.composite == pytest.approx(0.5 * 75.0 + 0.5 * 31.0)


def test_components_clip_to_0_100() -> None:
    assert fid_score(5.0, ANCHORS) == 100.0
    assert fid_score(500.0, ANCHORS) == 0.0
    assert fid_score(60.0, ANCHORS) == pytest.approx(50.0)
    assert clip_component(10.0, ANCHORS) == 0.0
    assert clip_component(45.0, ANCHORS) == 100.0
    assert composite_score(fid=1.0, clip=99.0, human=100.0, anchors=ANCHORS).composite == pytest.approx(100.0)


@pytest.mark.parametrize("weights", [
    dict(fid=-0.1, clip=0.6, human=0.5),
    dict(fid=0.4, clip=0.3, human=0.2),
    dict(fid=math.nan, clip=0.5, human=0.5),
    dict(fid=math.inf, clip=0.0, human=0.0),
])
def test_weights_are_validated(weights: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        CompositeWeights(**weights)


def test_default_weights_are_the_designs() -> None:
    assert CompositeWeights().as_dict() == {"fid": 0.4, "clip": 0.3, "human": 0.3}
    CompositeWeights(fid=0.1, clip=0.2, human=0.7)  # 0.1 + 0.2 + 0.7 is not exactly 1.0 in floats


def test_anchors_are_validated() -> None:
    with pytest.raises(ValueError, match="fid_worst"):
        Anchors(fid_best=10.0, fid_worst=10.0)
    with pytest.raises(ValueError, match="clip_ceiling"):
        Anchors(fid_best=1.0, fid_worst=2.0, clip_floor=50.0, clip_ceiling=40.0)
    with pytest.raises(ValueError, match="finite"):
        Anchors(fid_best=1.0, fid_worst=math.inf)


def test_missing_human_renormalizes_and_flags() -> None:
    r = composite_score(fid=35.0, clip=30.0, human=None, anchors=ANCHORS)
    assert r.composite == pytest.approx((0.4 * 75 + 0.3 * 50) / 0.7)
    assert r.missing == ("human",) and r.renormalized
    assert r.components["human"] is None
    assert r.weights_used["human"] == 0.0
    assert sum(r.weights_used.values()) == pytest.approx(1.0)
    nan = composite_score(fid=35.0, clip=30.0, human=float("nan"), anchors=ANCHORS)
    assert nan.composite == pytest.approx(r.composite) and nan.missing == ("human",)


def test_missing_zero_weight_component_changes_nothing() -> None:
    w = CompositeWeights(fid=0.5, clip=0.5, human=0.0)
    r = composite_score(fid=35.0, clip=30.0, human=None, anchors=ANCHORS, weights=w)
    assert r.composite == pytest.approx(0.5 * 75 + 0.5 * 50)
    assert r.missing == ("human",) and not r.renormalized


def test_nothing_present_gives_none() -> None:
    r = composite_score(fid=None, clip=None, human=None, anchors=ANCHORS)
    assert r.composite is None and r.renormalized and r.missing == ("fid", "clip", "human")
    only_zero = composite_score(fid=None, clip=None, human=70.0, anchors=ANCHORS,
                                weights=CompositeWeights(fid=0.5, clip=0.5, human=0.0))
    assert only_zero.composite is None
    json.dumps(r.to_dict())


def _scipy_fid(x: np.ndarray, y: np.ndarray) -> float:
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    return float(np.sum((x.mean(0) - y.mean(0)) ** 2) + np.trace(s1 + s2)
                 - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2).real))


def test_fid_anchors_from_a_reference_split() -> None:
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(12, 12))
    reference = rng.normal(size=(400, 12)) @ mixing
    noise = rng.uniform(-1, 1, size=(200, 12)) * 3 + 4.0  # "noise images": unrelated features

    half_a, half_b = split_reference(reference, seed=3)
    assert half_a.n + half_b.n == 400
    whole = FeatureMoments.from_features(reference)
    np.testing.assert_allclose(half_a.merge(half_b).sum_outer, whole.sum_outer, rtol=1e-12)

    best, worst = fid_anchors(half_a, half_b, FeatureMoments.from_features(noise))
    perm = np.random.default_rng(3).permutation(400)
    assert best == pytest.approx(_scipy_fid(reference[perm[:200]], reference[perm[200:]]), rel=1e-6)
    assert worst == pytest.approx(_scipy_fid(noise, reference), rel=1e-6)
    assert 0 < best < worst
    anchors = Anchors(fid_best=best, fid_worst=worst)
    json.dumps(anchors.to_dict())
    assert fid_score(best, anchors) == 100.0 and fid_score(worst, anchors) == 0.0
