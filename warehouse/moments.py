"""Generated-side FID moments per (scorer version, model, niche, time bucket, source partition).

The score agent has each image's embedding and the event it came from, so it keeps the FID
sufficient statistics (``sentinel.fid.FeatureMoments``) there, one state per key. ClickHouse
is the state store, not a Faust table: a state is D + D(D+1)/2 float64 (Σxxᵀ is symmetric: its
upper triangle is stored, migration 0013; 1 MiB for ViT-B/32) and a changelog record per event
would dwarf the event itself, while the report needs the states in SQL anyway. Every batch
rewrites the states of the keys it touches, so their size is the cost of a scored batch's
output step.

Exactness under at-least-once delivery: a key holds one source partition of jobs.completed,
and its state says exactly which of that partition's offsets it holds (every offset below
``complete_below`` plus a set above it: sentinel.offsets.AppliedOffsets). A batch applies only offsets the state
does not hold (each once, even when a batch holds a record twice), in whatever order they
come -- Faust can deliver a record after later ones when it re-reads one it failed to hand to
the agent, and a "last offset applied" watermark then skipped it (176 of 2,000 images lost in
a fault-suite run). The whole state row is written before the batch counts as finished
(ReplacingMergeTree(last_offset): the highest offset applied; of equal ones the last written).
When writing, ``complete_below`` is raised to the partition's committed offset -- every offset
below a commit was finished by the score agent (worker/delivery/overrides.py, the commit ledger),
which finishes a batch only after storing its states -- so the set stays the short uncommitted
tail. A redelivered batch
after a crash finds its offsets in the stored state and changes nothing. States are cached in
memory (bounded LRU) and reloaded from the table on a miss, and the cache is dropped on every
rebalance, so a partition that moved to another worker and back is never resumed from a stale
copy.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, NamedTuple, Sequence

import numpy as np
import pyarrow as pa

import sql as sql_files
from sentinel.buckets import bucket_start
from sentinel.fid import FeatureMoments
from sentinel.offsets import AppliedOffsets

MOMENTS_SCHEMA = pa.schema([
    ("scorer_version", pa.string()),
    ("model_id", pa.string()),
    ("niche", pa.string()),
    ("bucket", pa.timestamp("s", tz="UTC")),
    ("source_partition", pa.uint32()),
    ("last_offset", pa.uint64()),
    ("complete_below", pa.uint64()),
    ("applied_offsets", pa.list_(pa.uint64())),
    ("n", pa.uint64()),
    ("sum", pa.list_(pa.float64())),
    ("sum_outer", pa.list_(pa.float64())),  # all D² values: states written before migration 0013
    ("sum_outer_upper", pa.list_(pa.float64())),  # the upper triangle, row by row
])


class MomentKey(NamedTuple):
    scorer_version: str
    model_id: str
    niche: str
    bucket: int  # epoch seconds of the bucket start (event time: requested_at)
    partition: int


@dataclass
class MomentState:
    last_offset: int  # the highest offset applied (-1: none yet); the row's version
    moments: FeatureMoments
    held: AppliedOffsets | None = None  # which offsets it holds (None: every one up to last_offset)

    def __post_init__(self) -> None:
        if self.held is None:
            self.held = AppliedOffsets(self.last_offset + 1)


@dataclass(frozen=True)
class MomentInput:
    model_id: str
    niche: str
    requested_at: datetime
    partition: int
    offset: int
    embedding: Sequence[float]


class MomentStates:
    """Offset-idempotent FID moment states, loaded from and written back to ClickHouse."""

    def __init__(self, warehouse: Any, bucket_s: int = 3600, max_cached: int = 2048) -> None:
        self.warehouse = warehouse
        self.bucket_s = bucket_s
        self.max_cached = max_cached
        self._cache: OrderedDict[MomentKey, MomentState] = OrderedDict()
        self._lock = threading.Lock()  # apply runs in a sink thread, forget on the event loop

    def forget(self) -> None:
        """Drop every cached state (on rebalance): the table is the truth."""
        with self._lock:
            self._cache.clear()

    def apply(self, scorer_version: str, items: Iterable[MomentInput],
              committed: Callable[[int], int | None] | None = None) -> pa.Table | None:
        """Apply the offsets the states do not hold yet; return the changed states as rows to
        store (None: nothing new). ``committed(partition)`` is the source partition's committed
        offset (None: unknown), used to keep the stored offset lists short.

        Blocking (may query ClickHouse): call it off the event loop.
        """
        grouped: dict[MomentKey, list[MomentInput]] = {}
        for item in items:
            key = MomentKey(scorer_version, item.model_id, item.niche,
                            bucket_start(item.requested_at, self.bucket_s), item.partition)
            grouped.setdefault(key, []).append(item)
        if not grouped:
            return None
        with self._lock:
            return self._apply(grouped, committed)

    def _apply(self, grouped: dict[MomentKey, list[MomentInput]],
               committed: Callable[[int], int | None] | None) -> pa.Table | None:
        self._evict(keep=grouped.keys())
        self._load([k for k in grouped if k not in self._cache])
        changed: list[tuple[MomentKey, MomentState]] = []
        for key, group in grouped.items():
            state = self._cache[key]
            self._cache.move_to_end(key)
            fresh = [i for i in sorted(group, key=lambda i: i.offset) if state.held.add(i.offset)]
            if not fresh:
                continue
            state.moments.update(np.asarray([i.embedding for i in fresh], dtype=np.float64))
            state.last_offset = max(state.last_offset, fresh[-1].offset)
            if committed is not None:
                state.held.settle(committed(key.partition))
            changed.append((key, state))
        return state_rows(changed) if changed else None

    def _evict(self, keep: Iterable[MomentKey]) -> None:
        keep = set(keep)
        for key in list(self._cache):
            if len(self._cache) <= max(self.max_cached - len(keep), 0):
                break
            if key not in keep:
                del self._cache[key]

    def _load(self, keys: list[MomentKey]) -> None:
        if not keys:
            return
        for version in {k.scorer_version for k in keys}:
            wanted = [k for k in keys if k.scorer_version == version]
            table = self.warehouse.query(sql_files.report("moment_states"), {
                "scorer_version": version,
                "partitions": sorted({k.partition for k in wanted}),
                "buckets": sorted({k.bucket for k in wanted}),
            })
            # the floats of each state (D, and D² or D(D+1)/2) straight to numpy, never through Python lists
            sums, outers = _list_arrays(table, "sum"), _outer_arrays(table, "sum_outer")
            for i, row in enumerate(table.drop_columns(["sum", "sum_outer", "sum_outer_upper"]).to_pylist()):
                key = MomentKey(row["scorer_version"], row["model_id"], row["niche"], int(row["bucket"]),
                                int(row["source_partition"]))
                if key in wanted:
                    moments = _moments_from_row({"n": row["n"], "sum": sums[i], "sum_outer": outers[i]})
                    self._cache[key] = MomentState(int(row["last_offset"]), moments, AppliedOffsets(
                        int(row["complete_below"]), {int(o) for o in row["applied_offsets"]}))
        for key in keys:
            self._cache.setdefault(key, MomentState(-1, FeatureMoments()))


def _list_arrays(table: pa.Table, name: str) -> list[np.ndarray | None]:
    """Each row's list<float64> of column ``name`` as a writable numpy array (None: null)."""
    return [None if v is None else np.array(v) for v in table.column(name).to_numpy(zero_copy_only=False)]


def _outer_arrays(table: pa.Table, name: str) -> list[np.ndarray | None]:
    """Each row's Σxxᵀ as D² values (row-major) from column ``name`` (all D² values, or empty)
    plus ``<name>_upper`` (the upper triangle, or empty): either may be empty, or both filled
    when a merged window holds states of both forms."""
    full, upper = _list_arrays(table, name), _list_arrays(table, f"{name}_upper")
    out: list[np.ndarray | None] = []
    for f, u in zip(full, upper):
        if u is None or len(u) == 0:
            out.append(f)
            continue
        d = _triangle_side(len(u))
        m = np.zeros((d, d))
        m[_upper_indices(d)] = u
        m += np.triu(m, 1).T
        if f is not None and len(f):
            m += f.reshape(d, d)
        out.append(m.reshape(-1))
    return out


def _triangle_side(n: int) -> int:
    d = int((np.sqrt(8 * n + 1) - 1) / 2)
    if d * (d + 1) // 2 != n:
        raise ValueError(f"{n} values are no upper triangle of a square matrix")
    return d


@functools.cache
def _upper_indices(d: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.triu_indices(d)`` (row by row, diagonal included), made once per D."""
    return np.triu_indices(d)


def _moments_from_row(row: dict[str, Any]) -> FeatureMoments:
    """``row``: n, sum (D floats) and sum_outer (D² floats) of one state."""
    count = int(row["n"])
    if count == 0 or row["sum"] is None or len(row["sum"]) == 0:
        return FeatureMoments()
    s = np.asarray(row["sum"], np.float64)
    d = s.shape[0]
    return FeatureMoments(count, s, np.asarray(row["sum_outer"], np.float64).reshape(d, d))


def state_rows(states: Sequence[tuple[MomentKey, MomentState]]) -> pa.Table:
    return pa.table({
        "scorer_version": [k.scorer_version for k, _ in states],
        "model_id": [k.model_id for k, _ in states],
        "niche": [k.niche for k, _ in states],
        "bucket": [datetime.fromtimestamp(k.bucket, timezone.utc) for k, _ in states],
        "source_partition": [k.partition for k, _ in states],
        "last_offset": [s.last_offset for _, s in states],
        "complete_below": [s.held.complete_below for _, s in states],
        "applied_offsets": [sorted(s.held.above) for _, s in states],
        "n": [s.moments.n for _, s in states],
        # numpy arrays straight into Arrow (a state is D + D(D+1)/2 floats, 1 MiB at D = 512:
        # through Python lists a full D² state cost ~40 ms)
        "sum": pa.array([s.moments.sum for _, s in states], pa.list_(pa.float64())),
        "sum_outer": pa.array([_EMPTY] * len(states), pa.list_(pa.float64())),
        "sum_outer_upper": pa.array([s.moments.sum_outer[_upper_indices(s.moments.sum_outer.shape[0])]
                                     for _, s in states], pa.list_(pa.float64())),
    }, schema=MOMENTS_SCHEMA)


_EMPTY = np.zeros(0)


def rows_token(rows: pa.Table) -> str:
    """Same states (keys, offsets held) -> same insert dedup token. The count is part of it: a
    late record changes a state without changing its last offset."""
    h = hashlib.sha1(b"feature_moments")
    for r in rows.select(["scorer_version", "model_id", "niche", "bucket", "source_partition",
                          "last_offset", "complete_below", "applied_offsets", "n"]).to_pylist():
        h.update(repr(sorted(r.items())).encode())
    return h.hexdigest()


def window_moments(reader: Any, scorer_version: str, params: dict[str, str]) -> dict[tuple[str, str], FeatureMoments]:
    """Merged moments per (model, niche) for a window (``Window.params()``)."""
    table = reader.query(sql_files.report("feature_moments"), {**params, "scorer_version": scorer_version})
    sums, outers = _list_arrays(table, "feature_sum"), _outer_arrays(table, "feature_sum_outer")
    return {(row["model"], row["niche"]): _moments_from_row({"n": row["images"], "sum": sums[i], "sum_outer": outers[i]})
            for i, row in enumerate(table.select(["model", "niche", "images"]).to_pylist())}


def bucket_moments(reader: Any, scorer_version: str, model: str, niche: str, start: int,
                   end: int) -> list[tuple[int, FeatureMoments]]:
    """Per-bucket moments (all source partitions merged) of one model x niche for the buckets
    starting in [start, end) (epoch s): the FID drift detector's input."""
    table = reader.query(sql_files.report("fid_drift_buckets"), {
        "scorer_version": scorer_version, "model": model, "niche": niche, "start": int(start), "end": int(end)})
    sums, outers = _list_arrays(table, "feature_sum"), _outer_arrays(table, "feature_sum_outer")
    return [(int(row["bucket_start"]), _moments_from_row({"n": row["images"], "sum": sums[i], "sum_outer": outers[i]}))
            for i, row in enumerate(table.select(["bucket_start", "images"]).to_pylist())]
