"""Generated-side FID moments per (scorer version, model, niche, time bucket, source partition).

The score agent has each image's embedding and the event it came from, so it keeps the FID
sufficient statistics (``sentinel.fid.FeatureMoments``) there, one state per key. ClickHouse
is the state store, not a Faust table: a state is D + D(D+1)/2 float64 (Σxxᵀ is symmetric: its
upper triangle is stored, migration 0013; 1 MiB for ViT-B/32) and the report needs the states
in SQL anyway.

Two tables, so a batch's write is the size of its images, not of its keys' states: each scored
image's embedding goes to ``feature_moment_tail`` (4 KiB, keyed by its source offset), and a
key's whole state is rewritten to ``feature_moments`` only every ``compact_every`` images
(migration 0014). A key's moments are its newest stored state plus its tail rows that state does
not hold; every reader here folds both, and the worker does the same when it loads a state.

Exactness under at-least-once delivery: a key holds one source partition of jobs.completed,
and its state says exactly which of that partition's offsets it holds (every offset below
``complete_below`` plus a set above it: sentinel.offsets.AppliedOffsets). A batch applies only
offsets the state does not hold (each once, even when a batch holds a record twice), in
whatever order they come (Faust can deliver a record after later ones). A batch's tail rows
(and any state due) are written before the batch counts as finished; a re-read record writes
the same tail row again (ReplacingMergeTree on key + offset). When a state is written,
``complete_below`` is raised to the partition's committed offset -- every offset below a
commit was finished by the score agent (worker/delivery/overrides.py, the commit ledger), so
its image is in the state or in the tail it folded -- and the set stays the short uncommitted
tail. States are cached in memory (bounded LRU) and reloaded (state + unheld tail) on a miss,
and the cache is dropped on every rebalance, so a partition that moved to another worker and
back is never resumed from a stale copy.
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
    pending: int = 0  # images applied since the state was last stored (they are in the tail)

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


@dataclass
class MomentWrites:
    """What one :meth:`MomentStates.apply` changed: the new images' tail rows and the states due."""
    tail: pa.Table | None = None
    states: pa.Table | None = None

    def __bool__(self) -> bool:
        return self.tail is not None or self.states is not None

    def describe(self) -> str:
        return f"{_rows(self.tail)} moment tail rows and {_rows(self.states)} moment states"

    def write(self, warehouse: Any) -> None:
        """Both inserts, each with a dedup token from its keys and offsets (a retry is dropped)."""
        if self.tail is not None:
            warehouse.insert("sentinel.feature_moment_tail", self.tail, tail_token(self.tail))
        if self.states is not None:
            warehouse.insert("sentinel.feature_moments", self.states, rows_token(self.states))


def _rows(table: pa.Table | None) -> int:
    return 0 if table is None else table.num_rows


class MomentStates:
    """Offset-idempotent FID moment states, loaded from and written back to ClickHouse. A key's
    state is written every ``compact_every`` images; the images between go to the tail."""

    def __init__(self, warehouse: Any, bucket_s: int = 3600, max_cached: int = 2048,
                 compact_every: int = 256) -> None:
        if compact_every < 1:
            raise ValueError(f"compact_every={compact_every!r}: expected a count of images >= 1")
        self.warehouse = warehouse
        self.bucket_s = bucket_s
        self.max_cached = max_cached
        self.compact_every = compact_every
        self._cache: OrderedDict[MomentKey, MomentState] = OrderedDict()
        self._lock = threading.Lock()  # apply runs in a sink thread, forget on the event loop

    def forget(self) -> None:
        """Drop every cached state (on rebalance): the table is the truth."""
        with self._lock:
            self._cache.clear()

    def apply(self, scorer_version: str, items: Iterable[MomentInput],
              committed: Callable[[int], int | None] | None = None) -> MomentWrites:
        """Apply the offsets the states do not hold yet; return what to store (empty: nothing
        new): their tail rows, and the states that reached ``compact_every`` images since they
        were stored. ``committed(partition)`` is the source partition's committed offset (None:
        unknown), used to keep the stored offset lists short.

        Blocking (may query ClickHouse): call it off the event loop.
        """
        grouped: dict[MomentKey, list[MomentInput]] = {}
        for item in items:
            key = MomentKey(scorer_version, item.model_id, item.niche,
                            bucket_start(item.requested_at, self.bucket_s), item.partition)
            grouped.setdefault(key, []).append(item)
        if not grouped:
            return MomentWrites()
        with self._lock:
            return self._apply(grouped, committed)

    def _apply(self, grouped: dict[MomentKey, list[MomentInput]],
               committed: Callable[[int], int | None] | None) -> MomentWrites:
        self._evict(keep=grouped.keys())
        self._load([k for k in grouped if k not in self._cache])
        tail: list[tuple[MomentKey, int, np.ndarray]] = []
        due: list[tuple[MomentKey, MomentState]] = []
        for key, group in grouped.items():
            state = self._cache[key]
            self._cache.move_to_end(key)
            fresh = [i for i in sorted(group, key=lambda i: i.offset) if state.held.add(i.offset)]
            if not fresh:
                continue
            x = np.asarray([i.embedding for i in fresh], dtype=np.float64)
            state.moments.update(x)
            state.last_offset = max(state.last_offset, fresh[-1].offset)
            if committed is not None:
                state.held.settle(committed(key.partition))
            tail += [(key, i.offset, row) for i, row in zip(fresh, x)]
            state.pending += len(fresh)
            if state.pending >= self.compact_every:
                state.pending = 0
                due.append((key, state))
        return MomentWrites(tail_rows(tail) if tail else None, state_rows(due) if due else None)

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
        self._load_tail(keys)

    def _load_tail(self, keys: list[MomentKey]) -> None:
        """Fold into the just-loaded states the tail rows they do not hold (images applied after
        the state was stored)."""
        wanted = set(keys)
        for version in {k.scorer_version for k in keys}:
            table = self.warehouse.query(sql_files.report("moment_tail"), {
                "scorer_version": version,
                "partitions": sorted({k.partition for k in keys if k.scorer_version == version}),
                "buckets": sorted({k.bucket for k in keys if k.scorer_version == version}),
            })
            x = _embeddings(table)
            groups: dict[MomentKey, list[int]] = {}
            for i, row in enumerate(table.drop_columns(["embedding"]).to_pylist()):
                key = MomentKey(version, row["model_id"], row["niche"], int(row["bucket"]), int(row["source_partition"]))
                if key in wanted and self._cache[key].held.add(int(row["source_offset"])):
                    groups.setdefault(key, []).append(i)
                    self._cache[key].last_offset = max(self._cache[key].last_offset, int(row["source_offset"]))
            for key, idx in groups.items():
                self._cache[key].moments.update(x[idx])
                self._cache[key].pending += len(idx)


def _embeddings(table: pa.Table, name: str = "embedding") -> np.ndarray:
    """Column ``name`` (list<float64>, one embedding per row) as an [N, D] array."""
    if table.num_rows == 0:
        return np.zeros((0, 0))
    flat = table.column(name).combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return flat.reshape(table.num_rows, -1).astype(np.float64, copy=False)


def _fold_tail(table: pa.Table, group: Callable[[dict[str, Any]], Any]) -> dict[Any, FeatureMoments]:
    """Moments of a tail query's embeddings per ``group(row)``."""
    x = _embeddings(table)
    groups: dict[Any, list[int]] = {}
    for i, row in enumerate(table.drop_columns(["embedding"]).to_pylist()):
        groups.setdefault(group(row), []).append(i)
    return {key: FeatureMoments.from_features(x[idx]) for key, idx in groups.items()}


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

TAIL_SCHEMA = pa.schema([
    ("scorer_version", pa.string()),
    ("model_id", pa.string()),
    ("niche", pa.string()),
    ("bucket", pa.timestamp("s", tz="UTC")),
    ("source_partition", pa.uint32()),
    ("source_offset", pa.uint64()),
    ("embedding", pa.list_(pa.float64())),
])


def tail_rows(items: Sequence[tuple[MomentKey, int, np.ndarray]]) -> pa.Table:
    """One ``feature_moment_tail`` row per (key, source offset, embedding)."""
    return pa.table({
        "scorer_version": [k.scorer_version for k, _, _ in items],
        "model_id": [k.model_id for k, _, _ in items],
        "niche": [k.niche for k, _, _ in items],
        "bucket": [datetime.fromtimestamp(k.bucket, timezone.utc) for k, _, _ in items],
        "source_partition": [k.partition for k, _, _ in items],
        "source_offset": [o for _, o, _ in items],
        "embedding": pa.array([x for _, _, x in items], pa.list_(pa.float64())),
    }, schema=TAIL_SCHEMA)


def tail_token(rows: pa.Table) -> str:
    """Same images (keys and offsets) -> same insert dedup token."""
    h = hashlib.sha1(b"feature_moment_tail")
    for r in rows.select(["scorer_version", "model_id", "niche", "bucket", "source_partition",
                          "source_offset"]).to_pylist():
        h.update(repr(sorted(r.items())).encode())
    return h.hexdigest()


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
    states = {(row["model"], row["niche"]): _moments_from_row({"n": row["images"], "sum": sums[i], "sum_outer": outers[i]})
              for i, row in enumerate(table.select(["model", "niche", "images"]).to_pylist())}
    tail = _fold_tail(reader.query(sql_files.report("feature_moment_tail"), {**params, "scorer_version": scorer_version}),
                      lambda row: (row["model"], row["niche"]))
    return {key: states.get(key, FeatureMoments()).merge(tail.get(key, FeatureMoments()))
            for key in sorted(states.keys() | tail.keys())}


def bucket_moments(reader: Any, scorer_version: str, model: str, niche: str, start: int,
                   end: int) -> list[tuple[int, FeatureMoments]]:
    """Per-bucket moments (all source partitions merged) of one model x niche for the buckets
    starting in [start, end) (epoch s): the FID drift detector's input."""
    params = {"scorer_version": scorer_version, "model": model, "niche": niche, "start": int(start), "end": int(end)}
    table = reader.query(sql_files.report("fid_drift_buckets"), params)
    sums, outers = _list_arrays(table, "feature_sum"), _outer_arrays(table, "feature_sum_outer")
    states = {int(row["bucket_start"]): _moments_from_row({"n": row["images"], "sum": sums[i], "sum_outer": outers[i]})
              for i, row in enumerate(table.select(["bucket_start", "images"]).to_pylist())}
    tail = _fold_tail(reader.query(sql_files.report("fid_drift_tail"), params), lambda row: int(row["bucket_start"]))
    return [(b, states.get(b, FeatureMoments()).merge(tail.get(b, FeatureMoments())))
            for b in sorted(states.keys() | tail.keys())]
