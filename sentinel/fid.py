"""Fréchet distance between Gaussian fits of two feature sets, from mergeable moments.

FID (Heusel et al. 2017) fits a Gaussian N(mu, Sigma) to each feature set and reports

    d² = ||mu1 - mu2||² + Tr(Sigma1 + Sigma2 - 2 (Sigma1 Sigma2)^{1/2}).

A Gaussian fit only needs the sufficient statistics (n, Σx, Σxxᵀ). Those add, so a state per
(model, niche, time bucket) merges into any window exactly, and a window's FID is one merge
plus one eigen-decomposition — never a re-encode of images.

Numerics follow torchmetrics 1.9 ``FrechetInceptionDistance`` so both give the same number:

* moments accumulate in float64 whatever the extractor's dtype;
* covariance = (Σxxᵀ - n·mu·muᵀ) / (n - 1) (unbiased), as torchmetrics computes it;
* Tr((Sigma1 Sigma2)^{1/2}) = Σ sqrt(eigvals(Sigma1 Sigma2)), real part — the product of two
  PSD matrices has real non-negative eigenvalues, so this equals Tr(scipy.linalg.sqrtm(S1 S2))
  (pytorch-fid / clean-fid) up to round-off, without a full matrix square root. Tiny negative
  round-off eigenvalues become imaginary roots and contribute 0, exactly as in torchmetrics.

Serialized form (``to_dict``): ``{"v": 1, "n": int, "dim": int | None, "encoding": "b64" |
"list", "sum": ..., "sum_outer": ...}``. With ``"b64"`` (default, compact, bit-exact) arrays
are base64 of float64 little-endian bytes, ``sum_outer`` flattened row-major (D*D values);
with ``"list"`` they are JSON number lists (row-major flat, also exact through Python's
float repr) — the shape a SQL rollup can ``sumForEach``. ``from_dict`` reads both.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Literal, Mapping

import numpy as np

FORMAT_VERSION = 1
Encoding = Literal["b64", "list"]


def encode_array(a: np.ndarray, encoding: Encoding = "b64") -> str | list[float]:
    """float64 array -> JSON-safe value (row-major flat): base64 of '<f8' bytes, or a list."""
    flat = np.ascontiguousarray(a, dtype="<f8").reshape(-1)
    if encoding == "b64":
        return base64.b64encode(flat.tobytes()).decode("ascii")
    if encoding == "list":
        return flat.tolist()
    raise ValueError(f"unknown array encoding {encoding!r}")


def decode_array(value: str | list[float], shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of ``encode_array``: accepts either encoding, returns a writable float64 array."""
    if isinstance(value, str):
        flat = np.frombuffer(base64.b64decode(value), dtype="<f8").astype(np.float64)
    else:
        flat = np.asarray(value, dtype=np.float64)
    if flat.size != int(np.prod(shape)):
        raise ValueError(f"array has {flat.size} values, expected shape {shape}")
    return flat.reshape(shape).copy()


@dataclass
class FeatureMoments:
    """Sufficient statistics of a feature set: n, Σx (D,), Σxxᵀ (D, D), all float64.

    ``FeatureMoments()`` is the empty state with no dimension yet (a table's default); the
    first ``update`` or ``merge`` fixes it.
    """

    n: int = 0
    sum: np.ndarray | None = None
    sum_outer: np.ndarray | None = None

    @classmethod
    def zeros(cls, dim: int) -> "FeatureMoments":
        return cls(0, np.zeros(dim), np.zeros((dim, dim)))

    @classmethod
    def from_features(cls, features: np.ndarray) -> "FeatureMoments":
        m = cls()
        m.update(features)
        return m

    @property
    def dim(self) -> int | None:
        return None if self.sum is None else int(self.sum.shape[0])

    def update(self, features: np.ndarray) -> None:
        """Add a batch of features [N, D] (or one vector [D]) in place."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2:
            raise ValueError(f"features must be [N, D], got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("features contain NaN or inf")
        if self.sum is None:
            self.sum, self.sum_outer = np.zeros(x.shape[1]), np.zeros((x.shape[1], x.shape[1]))
        elif x.shape[1] != self.dim:
            raise ValueError(f"feature dim {x.shape[1]} != state dim {self.dim}")
        self.n += int(x.shape[0])
        self.sum += x.sum(axis=0)
        self.sum_outer += x.T @ x

    def merge(self, other: "FeatureMoments") -> "FeatureMoments":
        """A new state for the union of both feature sets (sums add; exact up to round-off)."""
        if other.sum is None:
            return self.copy()
        if self.sum is None:
            return other.copy()
        if self.dim != other.dim:
            raise ValueError(f"cannot merge moments of dim {self.dim} and {other.dim}")
        return FeatureMoments(self.n + other.n, self.sum + other.sum, self.sum_outer + other.sum_outer)

    def copy(self) -> "FeatureMoments":
        return FeatureMoments(
            self.n,
            None if self.sum is None else self.sum.copy(),
            None if self.sum_outer is None else self.sum_outer.copy(),
        )

    @property
    def mean(self) -> np.ndarray:
        self._require(1)
        return self.sum / self.n

    @property
    def covariance(self) -> np.ndarray:
        """Unbiased (n - 1) covariance, computed from raw sums exactly as torchmetrics does."""
        self._require(2)
        mu = self.mean[None, :]
        return (self.sum_outer - self.n * (mu.T @ mu)) / (self.n - 1)

    def compute(self) -> tuple[np.ndarray, np.ndarray]:
        """The Gaussian fit (mean, covariance)."""
        return self.mean, self.covariance

    def _require(self, k: int) -> None:
        if self.n < k:
            raise ValueError(f"need at least {k} feature vectors, have {self.n}")

    def to_dict(self, encoding: Encoding = "b64") -> dict[str, Any]:
        out: dict[str, Any] = {"v": FORMAT_VERSION, "n": self.n, "dim": self.dim, "encoding": encoding}
        out["sum"] = None if self.sum is None else encode_array(self.sum, encoding)
        out["sum_outer"] = None if self.sum_outer is None else encode_array(self.sum_outer, encoding)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "FeatureMoments":
        if not data:
            return cls()
        if data.get("v") != FORMAT_VERSION:
            raise ValueError(f"unknown FeatureMoments format {data.get('v')!r}")
        dim = data["dim"]
        if dim is None:
            return cls(int(data["n"]))
        d = int(dim)
        return cls(int(data["n"]), decode_array(data["sum"], (d,)), decode_array(data["sum_outer"], (d, d)))


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||² + Tr(S1 + S2 - 2 (S1 S2)^{1/2}), the trace term via eigenvalues of S1 S2."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.shape[0],) * 2:
        raise ValueError(f"shape mismatch: mu {mu1.shape}/{mu2.shape}, sigma {s1.shape}/{s2.shape}")
    diff = float(np.sum((mu1 - mu2) ** 2))
    eig = np.linalg.eigvals(s1 @ s2).astype(np.complex128)
    tr_sqrt = float(np.sqrt(eig).real.sum())
    return diff + float(np.trace(s1) + np.trace(s2)) - 2.0 * tr_sqrt


def fid(generated: FeatureMoments, reference: FeatureMoments) -> float:
    """FID of a generated set against a reference set (symmetric in its arguments)."""
    for name, m in (("generated", generated), ("reference", reference)):
        if m.n < 2:
            raise ValueError(f"FID needs at least 2 {name} feature vectors, have {m.n}")
    if generated.dim != reference.dim:
        raise ValueError(f"feature dims differ: generated {generated.dim}, reference {reference.dim}")
    return frechet_distance(*generated.compute(), *reference.compute())
