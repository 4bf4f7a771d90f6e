"""CMMD: squared maximum mean discrepancy of CLIP embeddings under a Gaussian RBF kernel.

Jayasumana et al. 2024, "Rethinking FID: Towards a Better Evaluation Metric for Image
Generation" (arXiv:2401.09603). Unlike FID, MMD assumes no Gaussian shape of the features and
its unbiased estimator has no sample-size bias, which is why it complements FID per niche.

Constants (from the paper and its reference code, google-research/cmmd ``distance.py``):
``k(x, y) = exp(-||x - y||² / (2 σ²))`` with σ = 10 (``SIGMA``), and the reported value is
MMD² × 1000 (``SCALE``, "to make the metric more human readable"). Embeddings are the
L2-normalized CLIP image embeddings (``ClipExtractor.encode_images`` already normalizes).

Estimator: the paper's formula is the unbiased U-statistic (diagonal terms excluded), which
is what the design asks for and what ``cmmd`` computes by default. The reference code
averages over the full kernel matrices (the biased V-statistic, diagonals included);
``mmd2_biased`` / ``cmmd(..., unbiased=False)`` reproduce that number for comparison.

MMD needs the samples themselves, not moments, so the streaming state is a bounded uniform
sample: ``EmbeddingReservoir`` (Algorithm R). Its random draws are a counter-based function of
(seed, item index) — SplitMix64 — so the state is just (capacity, seed, n_seen, samples): no
RNG state to serialize, and replaying the same stream gives the same reservoir. Two
reservoirs merge into a uniform sample of the union by drawing how many items come from each
side from the hypergeometric distribution (weighted by n_seen) and taking uniform subsets.

Serialized form (``to_dict``): ``{"v": 1, "capacity", "seed", "n_seen", "dim", "encoding",
"samples"}`` with ``samples`` row-major float64 encoded as in ``sentinel.fid`` (base64 of
little-endian bytes by default, or a JSON list).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from sentinel.fid import Encoding, decode_array, encode_array

SIGMA = 10.0
SCALE = 1000.0
FORMAT_VERSION = 1

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_MASK64 = (1 << 64) - 1


def _mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer on uint64 arrays (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def _seed_key(seed: int) -> np.uint64:
    return _mix64(np.array([seed & _MASK64], dtype=np.uint64))[0]


def _draws(seed: int, first: int, count: int) -> np.ndarray:
    """The SplitMix64 outputs for item indices first .. first+count-1 of a seeded stream."""
    idx = np.arange(first, first + count, dtype=np.uint64)
    return _mix64(_seed_key(seed) + (idx + np.uint64(1)) * _GAMMA)


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = np.sum(a * a, axis=1)[:, None] + np.sum(b * b, axis=1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0)


def _rbf(a: np.ndarray, b: np.ndarray, sigma: float) -> np.ndarray:
    return np.exp(-_sq_dists(a, b) / (2.0 * sigma * sigma))


def _as_pair(x: np.ndarray, y: np.ndarray, min_n: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"need [m, D] and [n, D] embeddings, got {x.shape} and {y.shape}")
    if len(x) < min_n or len(y) < min_n:
        raise ValueError(f"MMD needs at least {min_n} samples per set, got {len(x)} and {len(y)}")
    return x, y


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, sigma: float = SIGMA) -> float:
    """Unbiased MMD² (Gretton et al. 2012, eq. 3): U-statistics, k(x_i, x_i) terms excluded."""
    x, y = _as_pair(x, y, 2)
    m, n = len(x), len(y)
    kxx, kyy, kxy = _rbf(x, x, sigma), _rbf(y, y, sigma), _rbf(x, y, sigma)
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


def mmd2_biased(x: np.ndarray, y: np.ndarray, sigma: float = SIGMA) -> float:
    """Biased MMD² (V-statistic, full-matrix means) — what google-research/cmmd's code computes."""
    x, y = _as_pair(x, y, 1)
    return float(_rbf(x, x, sigma).mean() + _rbf(y, y, sigma).mean() - 2.0 * _rbf(x, y, sigma).mean())


@dataclass
class EmbeddingReservoir:
    """A uniform sample of at most ``capacity`` embeddings from a stream (Algorithm R).

    Give every independently-filled reservoir (e.g. one per time bucket) its own seed —
    ``for_key`` derives one from the table key — so that merged buckets are independent
    samples; reservoirs sharing a seed pick the same positions of their streams.
    """

    capacity: int
    seed: int = 0
    n_seen: int = 0
    samples: np.ndarray | None = None  # [min(capacity, n_seen), D] float64

    def __post_init__(self) -> None:
        if self.capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {self.capacity}")

    @classmethod
    def for_key(cls, key: str, capacity: int) -> "EmbeddingReservoir":
        """A reservoir whose seed is a stable hash of ``key`` (same key -> same draws)."""
        seed = int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "little")
        return cls(capacity, seed)

    @property
    def dim(self) -> int | None:
        return None if self.samples is None else int(self.samples.shape[1])

    def update(self, embeddings: np.ndarray) -> None:
        """Offer a batch [N, D] (or one [D]) in stream order, in place."""
        x = np.asarray(embeddings, dtype=np.float64)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2:
            raise ValueError(f"embeddings must be [N, D], got shape {x.shape}")
        if self.samples is None:
            self.samples = np.zeros((0, x.shape[1]))
        elif x.shape[1] != self.dim:
            raise ValueError(f"embedding dim {x.shape[1]} != reservoir dim {self.dim}")
        fill = max(0, min(self.capacity - self.n_seen, len(x)))
        if fill:
            self.samples = np.concatenate([self.samples, x[:fill]])
        rest = len(x) - fill
        if rest:
            first = self.n_seen + fill
            idx = np.arange(first, first + rest, dtype=np.uint64)
            slots = _draws(self.seed, first, rest) % (idx + np.uint64(1))
            for offset in np.flatnonzero(slots < np.uint64(self.capacity)):
                self.samples[int(slots[offset])] = x[fill + offset]
        self.n_seen += len(x)

    def merge(self, other: "EmbeddingReservoir") -> "EmbeddingReservoir":
        """A uniform sample of the union, weighted by how many items each side saw.

        Deterministic and commutative (inputs are put in a canonical order first); the
        number taken from each side is hypergeometric(n_a, n_b, capacity).
        """
        if self.capacity != other.capacity:
            raise ValueError(f"cannot merge reservoirs of capacity {self.capacity} and {other.capacity}")
        if other.samples is None or other.n_seen == 0:
            return self.copy()
        if self.samples is None or self.n_seen == 0:
            return other.copy()
        if self.dim != other.dim:
            raise ValueError(f"cannot merge reservoirs of dim {self.dim} and {other.dim}")
        a, b = sorted((self, other), key=lambda r: r._order_key())
        n = a.n_seen + b.n_seen
        mixed = (int(_seed_key(a.seed)) ^ (int(_seed_key(b.seed)) * int(_GAMMA))) & _MASK64
        seed = int(_mix64(np.array([mixed], dtype=np.uint64))[0])
        if n <= self.capacity:  # both hold everything they saw
            return EmbeddingReservoir(self.capacity, seed, n, np.concatenate([a.samples, b.samples]))
        rng = np.random.default_rng([0x4D45524745, a.seed & _MASK64, b.seed & _MASK64, a.n_seen, b.n_seen])
        take_a = int(rng.hypergeometric(a.n_seen, b.n_seen, self.capacity))
        ia = np.sort(rng.choice(len(a.samples), size=take_a, replace=False))
        ib = np.sort(rng.choice(len(b.samples), size=self.capacity - take_a, replace=False))
        return EmbeddingReservoir(self.capacity, seed, n, np.concatenate([a.samples[ia], b.samples[ib]]))

    def _order_key(self) -> tuple[int, int, bytes]:
        digest = hashlib.blake2b(np.ascontiguousarray(self.samples, "<f8").tobytes(), digest_size=16).digest()
        return (self.seed & _MASK64, self.n_seen, digest)

    def copy(self) -> "EmbeddingReservoir":
        return EmbeddingReservoir(self.capacity, self.seed, self.n_seen,
                                  None if self.samples is None else self.samples.copy())

    def compute(self) -> np.ndarray:
        """The current sample [min(capacity, n_seen), D]."""
        return np.zeros((0, 0)) if self.samples is None else self.samples.copy()

    def to_dict(self, encoding: Encoding = "b64") -> dict[str, Any]:
        return {
            "v": FORMAT_VERSION,
            "capacity": self.capacity,
            "seed": str(self.seed),  # decimal string: 64-bit seeds exceed JSON-safe integers
            "n_seen": self.n_seen,
            "dim": self.dim,
            "encoding": encoding,
            "samples": None if self.samples is None else encode_array(self.samples, encoding),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EmbeddingReservoir":
        if data.get("v") != FORMAT_VERSION:
            raise ValueError(f"unknown EmbeddingReservoir format {data.get('v')!r}")
        samples = None
        if data["dim"] is not None:
            d = int(data["dim"])
            rows = min(int(data["capacity"]), int(data["n_seen"]))
            samples = decode_array(data["samples"], (rows, d))
        return cls(int(data["capacity"]), int(data["seed"]), int(data["n_seen"]), samples)


def cmmd(generated: np.ndarray | EmbeddingReservoir, reference: np.ndarray | EmbeddingReservoir, *,
         sigma: float = SIGMA, scale: float = SCALE, unbiased: bool = True) -> float:
    """CMMD = scale × MMD²(generated, reference) on CLIP embeddings (arrays or reservoirs)."""
    x = generated.compute() if isinstance(generated, EmbeddingReservoir) else generated
    y = reference.compute() if isinstance(reference, EmbeddingReservoir) else reference
    return scale * (mmd2_unbiased(x, y, sigma) if unbiased else mmd2_biased(x, y, sigma))
