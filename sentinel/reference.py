"""Reference sets: what real images of a niche look like to the feature extractor.

FID and CMMD compare generated images of a niche against that niche's reference set. A
reference is built once (``sentinel reference build NICHE DIR``) from the extractor's
embeddings of real images and kept as

* FID moments (n, Σx, Σxxᵀ) — the reference Gaussian;
* the embeddings themselves (CMMD needs samples, not moments), capped at ``max_embeddings``
  by a seeded uniform sample;
* the FID normalization anchors measured on it (``sentinel.composite.fid_anchors``):
  ``fid_best`` = FID between two seeded random halves of the reference (real vs real: the best
  a generator can be expected to reach at that sample size), ``fid_worst`` = FID of uniform-noise
  images against the whole reference (no content at all).

Pure: takes features, returns statistics. Reading image files and running the extractor is
the caller's job (``warehouse/references.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from sentinel.composite import Anchors, fid_anchors, split_reference
from sentinel.fid import FeatureMoments

MIN_IMAGES = 8
DEFAULT_MAX_EMBEDDINGS = 5000


@dataclass(frozen=True)
class ReferenceStats:
    niche: str
    extractor: str
    moments: FeatureMoments
    embeddings: np.ndarray  # [m, D] float32, m <= max_embeddings
    fid_best: float
    fid_worst: float

    @property
    def n(self) -> int:
        return self.moments.n

    @property
    def anchors(self) -> Anchors:
        return Anchors(fid_best=self.fid_best, fid_worst=self.fid_worst)


def noise_images(n: int, size: int = 224, seed: int = 0) -> list[Image.Image]:
    """``n`` seeded uniform-noise RGB images: the "no content" end of the FID scale."""
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


def build_reference(niche: str, extractor: str, features: np.ndarray, noise_features: np.ndarray, *,
                    seed: int = 0, max_embeddings: int = DEFAULT_MAX_EMBEDDINGS) -> ReferenceStats:
    """Reference statistics and anchors from the features of real images and of noise images."""
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or len(x) < MIN_IMAGES:
        raise ValueError(f"a reference set needs at least {MIN_IMAGES} images, got {len(x) if x.ndim == 2 else 0}")
    half_a, half_b = split_reference(x, seed)
    best, worst = fid_anchors(half_a, half_b, FeatureMoments.from_features(noise_features))
    if not worst > best:
        raise ValueError(f"reference set for {niche!r} is degenerate: noise images are as close to it "
                         f"(FID {worst:.4g}) as its own halves are to each other (FID {best:.4g})")
    keep = x
    if len(x) > max_embeddings:
        keep = x[np.sort(np.random.default_rng(seed).choice(len(x), max_embeddings, replace=False))]
    return ReferenceStats(niche, extractor, FeatureMoments.from_features(x), keep.astype(np.float32), best, worst)
