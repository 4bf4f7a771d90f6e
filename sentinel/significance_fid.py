"""Bootstrap draws of FID for the significance of FID (and composite) orderings.

The report's FID comes from merged feature moments (every image of the window); its spread
needs per-image features, which the report has only as a hash sample of stored embeddings per
model x niche (the CMMD sample, at most ``cmmd_sample``). A full bootstrap of FID costs one
D×D matrix square root per draw (D = 512 for ViT-B/32), too slow for a report. So:

* **m-out-of-n draws.** Each draw takes ``m`` = min(``max_sample``, sample size) rows of the
  sample with replacement (``rng.integers(0, n, m)``, draws in order) and computes the exact
  FID of those rows against the reference moments, via the symmetric form
  ``|mu - mu_r|² + tr S + tr S_r - 2·sum sqrt(eig(R S R))`` with R = S_r^½, where R S R =
  Ycᵀ Yc / (m - 1) for Y = X R: one m×m (or D×D, the smaller) eigenvalue problem per draw.
* **Centred and rescaled.** Raw draws estimate the spread of an m-image FID, and the bootstrap
  of FID is biased upward (duplicates shrink the covariance). The draws used are
  ``point + (raw - mean(raw))·sqrt(m / n_images)``: centred on the report's point FID, spread
  scaled to the n_images behind it (FID's sampling spread falls like n^-½ when the sets differ).
  An approximation, stated in the report; it makes FID orderings testable at all.
"""

from __future__ import annotations

import numpy as np

from sentinel.fid import FeatureMoments

DEFAULT_MAX_SAMPLE = 128
_BATCH_CELLS = 4_000_000  # rows x m x D floats gathered at once (32 MB)


def _ref_root(reference: FeatureMoments) -> tuple[np.ndarray, np.ndarray, float]:
    mu_r, s_r = reference.compute()
    w, v = np.linalg.eigh((s_r + s_r.T) / 2.0)
    return mu_r, (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T, float(np.trace(s_r))


def fid_raw_draws(features: np.ndarray, reference: FeatureMoments, rng: np.random.Generator, resamples: int,
                  max_sample: int = DEFAULT_MAX_SAMPLE) -> np.ndarray:
    """FID of ``resamples`` m-row resamples of ``features`` [n, D] against ``reference``."""
    x = np.asarray(features, np.float64)
    n, d = x.shape
    if n < 2 or reference.n < 2:
        raise ValueError(f"need at least 2 feature rows and 2 reference rows, have {n} and {reference.n}")
    m = min(int(max_sample), n)
    mu_r, root, tr_r = _ref_root(reference)
    y = x @ root
    out = np.empty(resamples)
    rows = max(1, _BATCH_CELLS // (m * d))
    for start in range(0, resamples, rows):
        idx = rng.integers(0, n, size=(min(rows, resamples - start), m))
        xb, yb = x[idx], y[idx]  # (b, m, D)
        mu = xb.mean(axis=1)
        xc = xb - mu[:, None, :]
        yc = yb - yb.mean(axis=1, keepdims=True)
        gram = yc @ yc.transpose(0, 2, 1) if m <= d else yc.transpose(0, 2, 1) @ yc
        lam = np.linalg.eigvalsh(gram / (m - 1))
        tr_s = np.einsum("bij,bij->b", xc, xc) / (m - 1)
        out[start:start + len(idx)] = (np.sum((mu - mu_r) ** 2, axis=1) + tr_s + tr_r
                                       - 2.0 * np.sqrt(np.clip(lam, 0.0, None)).sum(axis=1))
    return out


def fid_draws(features: np.ndarray, reference: FeatureMoments, point: float, n_images: int,
              rng: np.random.Generator, resamples: int, max_sample: int = DEFAULT_MAX_SAMPLE) -> np.ndarray:
    """Draws of the report's FID: raw m-row draws centred on ``point`` and scaled by
    sqrt(m / n_images)."""
    raw = fid_raw_draws(features, reference, rng, resamples, max_sample)
    m = min(int(max_sample), len(features))
    return point + (raw - raw.mean()) * np.sqrt(m / max(int(n_images), m))
