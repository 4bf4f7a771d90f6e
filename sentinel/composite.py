"""The composite quality score: a weighted mean of FID, CLIP and human scores on 0–100.

    composite = w_fid·FID_score + w_clip·CLIP_score + w_human·Human_score,  weights 0.4/0.3/0.3

Each component is first mapped to 0–100 (higher is better) against anchors stated in config
and printed with the report, so a number means the same thing across reports:

* FID_score = 100·clip((fid_worst - fid) / (fid_worst - fid_best), 0, 1). ``fid_best`` is the
  FID of one random half of the niche's reference set against the other half — the distance
  real images of the niche have from each other, the best a generator can be expected to do;
  ``fid_worst`` is the FID of pure-noise images against the reference set — no content at all.
  ``fid_anchors`` computes both from moments. Caveat: FID is biased upward at small n, so the
  half-split anchor is measured at half the reference size; generated sets much smaller than
  that score lower than their true quality suggests.
* CLIP_score: the mean CLIPScore (already 0–100, 100·max(cos, 0)), optionally stretched with
  ``clip_floor``/``clip_ceiling`` (defaults 0/100 = unchanged) since raw CLIPScores of real
  captioned photos cluster in a narrow band.
* Human_score: the Bradley–Terry 0–100 score from ``sentinel.human`` (expected score against
  the average model ×100), used as is.

Missing components (``None`` or NaN, e.g. no human ratings yet): the remaining weights are
renormalized to sum to 1, the result lists what is missing and sets ``renormalized``; a
report must print that flag next to the number. With no component present (or only
zero-weight ones) the composite is ``None``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from sentinel.fid import FeatureMoments
from sentinel.fid import fid as fid_distance

COMPONENTS = ("fid", "clip", "human")


@dataclass(frozen=True)
class CompositeWeights:
    """Component weights: finite, non-negative, summing to 1 (within 1e-9)."""

    fid: float = 0.4
    clip: float = 0.3
    human: float = 0.3

    def __post_init__(self) -> None:
        values = self.as_dict()
        for name, w in values.items():
            if not math.isfinite(w) or w < 0:
                raise ValueError(f"weight {name}={w!r} must be finite and non-negative")
        if abs(sum(values.values()) - 1.0) > 1e-9:
            raise ValueError(f"weights must sum to 1, got {sum(values.values())!r}")

    def as_dict(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in COMPONENTS}


@dataclass(frozen=True)
class Anchors:
    """Normalization anchors: FID at 100 (``fid_best``) and at 0 (``fid_worst``); CLIP range."""

    fid_best: float
    fid_worst: float
    clip_floor: float = 0.0
    clip_ceiling: float = 100.0

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in asdict(self).values()):
            raise ValueError(f"anchors must be finite: {self}")
        if not self.fid_worst > self.fid_best:
            raise ValueError(f"fid_worst ({self.fid_worst}) must exceed fid_best ({self.fid_best})")
        if not self.clip_ceiling > self.clip_floor:
            raise ValueError(f"clip_ceiling ({self.clip_ceiling}) must exceed clip_floor ({self.clip_floor})")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class CompositeResult:
    composite: float | None
    components: dict[str, float | None]  # normalized 0–100 scores, None when missing
    weights_used: dict[str, float]  # after renormalization; 0 for missing components
    missing: tuple[str, ...]
    renormalized: bool

    def to_dict(self) -> dict[str, Any]:
        return {"composite": self.composite, "components": dict(self.components),
                "weights_used": dict(self.weights_used), "missing": list(self.missing),
                "renormalized": self.renormalized}


def fid_score(fid_value: float, anchors: Anchors) -> float:
    """100 at ``fid_best`` or below, 0 at ``fid_worst`` or above, linear between."""
    t = (anchors.fid_worst - fid_value) / (anchors.fid_worst - anchors.fid_best)
    return 100.0 * min(max(t, 0.0), 1.0)


def clip_component(clip_value: float, anchors: Anchors) -> float:
    """Mean CLIPScore (0–100) stretched so ``clip_floor`` -> 0 and ``clip_ceiling`` -> 100."""
    t = (clip_value - anchors.clip_floor) / (anchors.clip_ceiling - anchors.clip_floor)
    return 100.0 * min(max(t, 0.0), 1.0)


def split_reference(features: np.ndarray, seed: int = 0) -> tuple[FeatureMoments, FeatureMoments]:
    """A seeded random split of reference features into two halves' moments."""
    x = np.asarray(features, np.float64)
    if len(x) < 4:
        raise ValueError(f"need at least 4 reference features to split, have {len(x)}")
    perm = np.random.default_rng(seed).permutation(len(x))
    half = len(x) // 2
    return FeatureMoments.from_features(x[perm[:half]]), FeatureMoments.from_features(x[perm[half:]])


def fid_anchors(reference_half_a: FeatureMoments, reference_half_b: FeatureMoments,
                noise: FeatureMoments) -> tuple[float, float]:
    """(fid_best, fid_worst): half vs half of the reference, and noise images vs all of it."""
    best = fid_distance(reference_half_a, reference_half_b)
    worst = fid_distance(noise, reference_half_a.merge(reference_half_b))
    return best, worst


def _missing(v: float | None) -> bool:
    return v is None or not math.isfinite(v)


def composite_score(*, fid: float | None, clip: float | None, human: float | None, anchors: Anchors,
                    weights: CompositeWeights = CompositeWeights()) -> CompositeResult:
    """Weighted composite from raw FID, mean CLIPScore and BT human score (0–100).

    ``None``/NaN marks a missing component; the others' weights are renormalized.
    """
    return combine({
        "fid": None if _missing(fid) else fid_score(float(fid), anchors),
        "clip": None if _missing(clip) else clip_component(float(clip), anchors),
        "human": None if _missing(human) else float(human),
    }, weights)


def combine(components: dict[str, float | None], weights: CompositeWeights = CompositeWeights()) -> CompositeResult:
    """Weighted composite of components already on 0–100 (e.g. a model's FID_score averaged over
    its niches, each normalized with that niche's anchors). Missing: ``None``/NaN/absent key."""
    scores: dict[str, float | None] = {
        name: None if _missing(components.get(name)) else min(max(float(components[name]), 0.0), 100.0)  # type: ignore[arg-type]
        for name in COMPONENTS}
    missing = tuple(name for name in COMPONENTS if scores[name] is None)
    w = weights.as_dict()
    present = sum(w[name] for name in COMPONENTS if name not in missing)
    renormalized = bool(missing) and any(w[name] > 0 for name in missing)
    if present <= 0:
        return CompositeResult(None, scores, {name: 0.0 for name in COMPONENTS}, missing, renormalized)
    used = {name: (0.0 if name in missing else w[name] / present) for name in COMPONENTS}
    total = sum(used[name] * scores[name] for name in COMPONENTS if name not in missing)  # type: ignore[operator]
    return CompositeResult(float(total), scores, used, missing, renormalized)


@dataclass(frozen=True)
class QualityConfig:
    weights: CompositeWeights = field(default_factory=CompositeWeights)
    clip_floor: float = 0.0
    clip_ceiling: float = 100.0
    cmmd_sample: int = 500  # stored embeddings per model x niche drawn for CMMD
    human_min_ratings: int = 30  # a model x niche Human needs this many of its ratings in the niche
    fid_significance: bool = True  # FID draws (sentinel.significance_fid) for FID/composite ranks
