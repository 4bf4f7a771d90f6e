"""Bootstrap draws of FID for the significance of FID (and composite) orderings.

The report's FID comes from merged feature moments (every image of the window); its spread
needs per-image features, which the report has only as a hash sample of stored embeddings per
model x niche (the CMMD sample, at most ``cmmd_sample``). Resampling that sample and taking one
D×D matrix square root per draw is too slow for a report at D = 512, and it measures the spread
of an FID of a few hundred images, not of the n behind the report's number (scaling it by
sqrt(m/n) overstated the spread 1.5-2x at D = 64 and 5-8x at D = 512 in a Monte Carlo check).

So the draws bootstrap FID's **influence function** (the delta method): with the generated
set's moments (mu, S), the reference's (mu_r, S_r), R = S_r^½ and T = R (R S R)^-½ R (the
derivative of tr((R S R)^½) is ½T),

    phi(x) = 2 (mu - mu_r)·(x - mu) + (x - mu)ᵀ (I - T) (x - mu) - tr((I - T) S),

the first-order change of FID when the image x is added: FID over n images ≈ FID + mean of phi
over them, with variance var(phi) / n. A draw resamples the embedding sample's phi values
(n_s of them) with replacement and returns ``point + (mean(phi[idx]) - mean(phi))·sqrt(n_s / n)``:
centred on the report's FID, spread scaled to the n images behind it. One D×D eigenproblem per
row; draws cost like a bootstrap mean. Monte Carlo check (tests): the draws' spread is 1.0x the
true sampling spread of FID at D = 8..64 far from the reference, up to ~1.5x (conservative)
close to the reference or with n not much above D.
"""

from __future__ import annotations

import numpy as np

from sentinel.bootstrap import resample_indices
from sentinel.fid import FeatureMoments


def _sym_power(m: np.ndarray, power: float) -> np.ndarray:
    """M^power of a symmetric PSD matrix (eigenvalues below 1e-12 of the largest: 0)."""
    w, v = np.linalg.eigh((m + m.T) / 2.0)
    keep = w > 1e-12 * max(float(w.max()), 1e-300)
    return (v * np.where(keep, np.clip(w, 1e-300, None) ** power, 0.0)) @ v.T


def reference_root(reference: FeatureMoments) -> np.ndarray:
    """S_r^½ of a reference set (one per niche; pass it to ``fid_influence`` for every row)."""
    return _sym_power(reference.covariance, 0.5)


def fid_influence(features: np.ndarray, generated: FeatureMoments, reference: FeatureMoments,
                  root: np.ndarray | None = None) -> np.ndarray:
    """phi(x) of each row of ``features`` [n_s, D] (see the module docstring); ``root``:
    ``reference_root(reference)`` when the caller has it."""
    mu, s = generated.compute()
    mu_r = reference.mean
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or x.shape[1] != mu.shape[0]:
        raise ValueError(f"features must be [n, {mu.shape[0]}], got {x.shape}")
    root = reference_root(reference) if root is None else root
    g = np.eye(len(mu)) - root @ _sym_power(root @ s @ root, -0.5) @ root
    g = (g + g.T) / 2.0
    xc = x - mu
    return 2.0 * xc @ (mu - mu_r) + np.sum((xc @ g) * xc, axis=1) - float(np.sum(g * s))


def fid_draws(features: np.ndarray, generated: FeatureMoments, reference: FeatureMoments, point: float,
              rng: np.random.Generator, resamples: int, root: np.ndarray | None = None) -> np.ndarray:
    """``resamples`` draws of the report's FID (``point``, over ``generated.n`` images) from the
    influence values of the embedding sample ``features``; indices ``rng.integers(0, n_s,
    (resamples, n_s))`` in blocks, in order."""
    phi = fid_influence(features, generated, reference, root)
    n_s = len(phi)
    if n_s < 2 or generated.n < 2:
        raise ValueError(f"need at least 2 sample rows and 2 images, have {n_s} and {generated.n}")
    means = np.concatenate([phi[idx].mean(axis=1) for idx in resample_indices(rng, n_s, resamples)])
    return point + (means - phi.mean()) * np.sqrt(n_s / max(generated.n, n_s))
