"""Latency sketches: t-digests of end-to-end latency and its parts, mergeable and serializable.

A sketch per (model, niche, time bucket, source partition) lives in a Faust table; any window's
p50/p95/p99 is the merge of its buckets' sketches — across partitions and workers too, since
the serialized form travels. The digest library (fastdigest, a Rust t-digest) was chosen by
measurement: see ``bench/digest.py`` and the README.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Iterable, Mapping

from fastdigest import TDigest

from sentinel.guard_tally import GuardTally
from sentinel.tally import JobTally

PARTS = ("e2e", "queue", "cold_start", "inference")
QUANTILES = (0.5, 0.95, 0.99)
# 500 centroids: worst p95 error 0.09% over 5 seeds of 1M latency-like values (200 reached
# 0.68%, over our 0.5% target); ~8 KB as bytes. See bench/results/digest.json.
DEFAULT_MAX_CENTROIDS = 500


class LatencySketch:
    """A t-digest of latencies in milliseconds.

    A sketch keeps its first ``SMALL`` values in a list and becomes a digest after them: a
    fastdigest TDigest preallocates about 8 KB, and most live keys (a model x niche x minute
    bucket x partition) hold a handful of values, so a worker on steady traffic allocated four
    fresh 8 KB buffers per event. The digest is then fed the kept values one by one, so every
    answer and every serialized byte is what a digest updated from the start gives
    (tests/sentinel/test_latency.py).
    """

    SMALL = 64
    __slots__ = ("_digest", "_values", "max_centroids")

    def __init__(self, digest: TDigest | None = None, max_centroids: int = DEFAULT_MAX_CENTROIDS) -> None:
        self._digest = digest
        self._values: list[float] | None = None if digest is not None else []
        self.max_centroids = max_centroids

    @property
    def digest(self) -> TDigest:
        """The digest (built from the values kept so far and kept from then on)."""
        if self._digest is None:
            self._digest = self._built()
            self._values = None
        return self._digest

    def _built(self) -> TDigest:
        if self._digest is not None:
            return self._digest
        digest = TDigest(max_centroids=self.max_centroids)
        for value in self._values or ():  # one at a time, as if they had never waited
            digest.update(value)
        return digest

    def update(self, value_ms: float) -> None:
        if self._values is not None and len(self._values) < self.SMALL:
            value = float(value_ms)
            if not math.isfinite(value):  # refused now, as the digest would, not at the 65th value
                raise ValueError(f"latency values must be finite, got {value_ms!r}")
            self._values.append(value)
        else:
            self.digest.update(value_ms)

    def update_many(self, values_ms: Iterable[float]) -> None:
        self.digest.batch_update(list(values_ms))

    def merge(self, other: "LatencySketch") -> "LatencySketch":
        return LatencySketch(self._built().merge(other._built()))

    @property
    def count(self) -> int:
        return len(self._values) if self._values is not None else int(self._digest.n_values)

    def quantile(self, q: float) -> float | None:
        return None if self.count == 0 else float(self._built().quantile(q))

    def to_dict(self) -> dict[str, Any] | None:
        # An empty digest serializes min/max as NaN, which is not valid JSON: store null.
        return None if self.count == 0 else self._built().to_dict()

    def to_b64(self) -> str | None:
        """Compact form: base64 of fastdigest's binary encoding (lossless; ~22x faster to
        write and read back than the dict form through JSON, measured)."""
        return None if self.count == 0 else base64.b64encode(self._built().to_bytes()).decode("ascii")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | str | None) -> "LatencySketch":
        if data is None:
            return cls()
        if isinstance(data, str):
            return cls(TDigest.from_bytes(base64.b64decode(data)))
        return cls(TDigest.from_dict(dict(data)))


def _ms(delta: timedelta) -> float:
    return delta / timedelta(milliseconds=1)


def latency_parts(event: Mapping[str, Any]) -> dict[str, float]:
    """End to end (requested -> delivered, cold start included) and its parts, in ms."""
    cold = float(event.get("cold_start_ms") or 0.0)
    inference = event.get("inference_ms")
    if inference is None:  # older events: what is left of the node's work after the cold start
        inference = max(_ms(event["completed_at"] - event["started_at"]) - cold, 0.0)
    return {
        "e2e": _ms(event["delivered_at"] - event["requested_at"]),
        "queue": _ms(event["started_at"] - event["requested_at"]),
        "cold_start": cold,
        "inference": float(inference),
    }


@dataclass
class LiveStats:
    """Tallies plus latency sketches for one key, updated at most once per source offset."""

    tally: JobTally = field(default_factory=JobTally)
    latency: dict[str, LatencySketch] = field(default_factory=lambda: {p: LatencySketch() for p in PARTS})
    guard: GuardTally = field(default_factory=GuardTally)  # guard mode (sentinel/guard_tally.py)

    def update(self, *, partition: int, offset: int, parts_ms: Mapping[str, float],
               gpu_seconds: float, cost_usd: float, guard: Mapping[str, Any] | None = None) -> bool:
        """``guard``: sentinel.guard_tally.guard_input of the event (None: unguarded). A discarded
        attempt adds its cost and GPU-seconds but no latency (it reached no customer)."""
        if not self.tally.update(partition=partition, offset=offset, gpu_seconds=gpu_seconds, cost_usd=cost_usd):
            return False
        if guard is not None:
            self.guard.update(**guard)
            if not guard["delivered"]:
                return True
        for part in PARTS:
            self.latency[part].update(parts_ms[part])
        return True

    def merge(self, other: "LiveStats") -> "LiveStats":
        return LiveStats(self.tally.merge(other.tally), {p: self.latency[p].merge(other.latency[p]) for p in PARTS},
                         self.guard.merge(other.guard))

    def compute(self, quantiles: Iterable[float] = QUANTILES) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.tally.compute())
        if self.guard.attempts:
            out.update(self.guard.compute())
            delivered = self.tally.jobs - self.guard.discarded  # cost per delivered image, as the report
            out["cost_per_image_usd"] = self.tally.cost_usd / delivered if delivered else None
        for part in PARTS:
            for q in quantiles:
                out[f"{part}_p{round(q * 100):d}_ms"] = self.latency[part].quantile(q)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Format v2: digests as base64 of fastdigest bytes (v1 had fastdigest's dict form;
        both are read)."""
        out = {"v": 2, "tally": self.tally.to_dict(), "latency": {p: self.latency[p].to_b64() for p in PARTS}}
        if self.guard.attempts:  # absent on unguarded keys (and in states written before guard mode)
            out["guard"] = self.guard.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "LiveStats":
        if not data:
            return cls()
        if data.get("v") not in (1, 2):
            raise ValueError(f"unknown LiveStats format {data.get('v')!r}")
        return cls(JobTally.from_dict(data["tally"]),
                   {p: LatencySketch.from_dict(data["latency"][p]) for p in PARTS}, GuardTally.from_dict(data.get("guard")))


def merge_all(states: Iterable[LiveStats]) -> LiveStats:
    merged = LiveStats()
    for state in states:
        merged = merged.merge(state)
    return merged
