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
from warehouse.moment_reads import (consistent_read, embeddings, list_arrays, moments_from_row, outer_arrays,
                                    upper_indices)

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
        missing = [k for k in grouped if k not in self._cache]
        if missing:
            self._load(missing)
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
        """Load ``keys`` (stored state + the tail rows it does not hold) into the cache, each
        version's keys at once: a failed read leaves the cache as it was, so a retry loads again."""
        for version in {k.scorer_version for k in keys}:
            wanted = {k for k in keys if k.scorer_version == version}
            params = {"scorer_version": version, "partitions": sorted({k.partition for k in wanted}),
                      "buckets": sorted({k.bucket for k in wanted})}
            states, tail = consistent_read(self.warehouse, params,
                                           lambda: self.warehouse.query(sql_files.report("moment_states"), params),
                                           lambda: self.warehouse.query(sql_files.report("moment_tail"), params))
            self._cache.update(_loaded(version, wanted, states, tail))


def _loaded(version: str, wanted: set[MomentKey], table: pa.Table, tail: pa.Table) -> dict[MomentKey, MomentState]:
    """The ``wanted`` keys' states (``moment_states.sql`` rows; a key without one starts empty)
    with the tail rows they do not hold (``moment_tail.sql``) folded in."""
    # the floats of each state (D, and D² or D(D+1)/2) straight to numpy, never through Python lists
    sums, outers = list_arrays(table, "sum"), outer_arrays(table, "sum_outer")
    loaded = {key: MomentState(-1, FeatureMoments()) for key in wanted}
    for i, row in enumerate(table.drop_columns(["sum", "sum_outer", "sum_outer_upper"]).to_pylist()):
        key = MomentKey(row["scorer_version"], row["model_id"], row["niche"], int(row["bucket"]),
                        int(row["source_partition"]))
        if key in wanted:
            moments = moments_from_row({"n": row["n"], "sum": sums[i], "sum_outer": outers[i]})
            loaded[key] = MomentState(int(row["last_offset"]), moments, AppliedOffsets(
                int(row["complete_below"]), {int(o) for o in row["applied_offsets"]}))
    # images applied after their key's state was stored
    x = embeddings(tail)
    groups: dict[MomentKey, list[int]] = {}
    for i, row in enumerate(tail.drop_columns(["embedding"]).to_pylist()):
        key = MomentKey(version, row["model_id"], row["niche"], int(row["bucket"]), int(row["source_partition"]))
        if key in wanted and loaded[key].held.add(int(row["source_offset"])):
            groups.setdefault(key, []).append(i)
            loaded[key].last_offset = max(loaded[key].last_offset, int(row["source_offset"]))
    for key, idx in groups.items():
        loaded[key].moments.update(x[idx])
        loaded[key].pending += len(idx)
    return loaded


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
        "sum_outer_upper": pa.array([s.moments.sum_outer[upper_indices(s.moments.sum_outer.shape[0])]
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


_KEY_COLUMNS = ["scorer_version", "model_id", "niche", "bucket", "source_partition"]


def tail_token(rows: pa.Table) -> str:
    """Same images (keys and offsets) -> same insert dedup token."""
    return _token(b"feature_moment_tail", rows, _KEY_COLUMNS + ["source_offset"])


def rows_token(rows: pa.Table) -> str:
    """Same states (keys, offsets held) -> same insert dedup token. The count is part of it: a
    late record changes a state without changing its last offset."""
    return _token(b"feature_moments", rows, _KEY_COLUMNS + ["last_offset", "complete_below", "applied_offsets", "n"])


def _token(table: bytes, rows: pa.Table, columns: list[str]) -> str:
    h = hashlib.sha1(table)
    for r in rows.select(columns).to_pylist():
        h.update(repr(sorted(r.items())).encode())
    return h.hexdigest()
