"""Reading FID moments back: a key's moments are its newest stored state plus the tail rows it
does not hold (warehouse/moments.py, migration 0014). States and tail rows come from two
queries, so every reader runs them inside :func:`consistent_read`, which reads again if a state
was rewritten in between (each image counted once). Also the decoding of stored states: Σx,
and Σxxᵀ as all D² values (states before migration 0013) or its upper triangle."""

from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np
import pyarrow as pa

import sql as sql_files
from sentinel.fid import FeatureMoments
from warehouse.client import WarehouseError

class MomentsChanging(WarehouseError):
    """The stored states kept being rewritten while a reader read them and their tail rows."""


# moment_marks.sql's optional filters: match everything
_ALL = {"start": "1900-01-01 00:00:00.000", "end": "2299-12-31 00:00:00.000", "from_s": 0, "to_s": 2**32 - 1,
        "model": "", "niche": "", "partitions": [], "buckets": []}


def consistent_read(reader: Any, marks: dict[str, Any], states: Callable[[], pa.Table],
                    tail: Callable[[], pa.Table], attempts: int = 5) -> tuple[pa.Table, pa.Table]:
    """``states()`` (a states query), then ``tail()`` (a tail query through the view), again until
    the states in ``marks``'s range are the same before and after both (sql/reports/moment_marks.sql:
    scorer_version and, optionally, the bounds and lists its states query filters on). Then the view
    joined the states the first query read: each image counted once."""
    params = {**_ALL, **marks}
    for _ in range(attempts):
        before = reader.query(sql_files.report("moment_marks"), params).to_pylist()
        read, rows = states(), tail()
        if reader.query(sql_files.report("moment_marks"), params).to_pylist() == before:
            return read, rows
    raise MomentsChanging(f"FID moment states of {marks['scorer_version']!r} were rewritten during each of "
                          f"{attempts} reads; read again when the worker is less busy")


def embeddings(table: pa.Table, name: str = "embedding") -> np.ndarray:
    """Column ``name`` (list<float64>, one embedding per row) as an [N, D] array."""
    if table.num_rows == 0:
        return np.zeros((0, 0))
    flat = table.column(name).combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return flat.reshape(table.num_rows, -1).astype(np.float64, copy=False)


def fold_tail(table: pa.Table, group: Callable[[dict[str, Any]], Any]) -> dict[Any, FeatureMoments]:
    """Moments of a tail query's embeddings per ``group(row)``."""
    x = embeddings(table)
    groups: dict[Any, list[int]] = {}
    for i, row in enumerate(table.drop_columns(["embedding"]).to_pylist()):
        groups.setdefault(group(row), []).append(i)
    return {key: FeatureMoments.from_features(x[idx]) for key, idx in groups.items()}


def list_arrays(table: pa.Table, name: str) -> list[np.ndarray | None]:
    """Each row's list<float64> of column ``name`` as a writable numpy array (None: null)."""
    return [None if v is None else np.array(v) for v in table.column(name).to_numpy(zero_copy_only=False)]


def outer_arrays(table: pa.Table, name: str) -> list[np.ndarray | None]:
    """Each row's Σxxᵀ as D² values (row-major) from column ``name`` (all D² values, or empty)
    plus ``<name>_upper`` (the upper triangle, or empty): either may be empty, or both filled
    when a merged window holds states of both forms."""
    full, upper = list_arrays(table, name), list_arrays(table, f"{name}_upper")
    out: list[np.ndarray | None] = []
    for f, u in zip(full, upper):
        if u is None or len(u) == 0:
            out.append(f)
            continue
        d = _triangle_side(len(u))
        m = np.zeros((d, d))
        m[upper_indices(d)] = u
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
def upper_indices(d: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.triu_indices(d)`` (row by row, diagonal included), made once per D."""
    return np.triu_indices(d)


def moments_from_row(row: dict[str, Any]) -> FeatureMoments:
    """``row``: n, sum (D floats) and sum_outer (D² floats) of one state."""
    count = int(row["n"])
    if count == 0 or row["sum"] is None or len(row["sum"]) == 0:
        return FeatureMoments()
    s = np.asarray(row["sum"], np.float64)
    d = s.shape[0]
    return FeatureMoments(count, s, np.asarray(row["sum_outer"], np.float64).reshape(d, d))


def window_moments(reader: Any, scorer_version: str, params: dict[str, str]) -> dict[tuple[str, str], FeatureMoments]:
    """Merged moments per (model, niche) for a window (``Window.params()``): states + tail rows."""
    query = {**params, "scorer_version": scorer_version}
    table, tail_rows_ = consistent_read(reader, query, lambda: reader.query(sql_files.report("feature_moments"), query),
                                        lambda: reader.query(sql_files.report("feature_moment_tail"), query))
    sums, outers = list_arrays(table, "feature_sum"), outer_arrays(table, "feature_sum_outer")
    states = {(row["model"], row["niche"]): moments_from_row({"n": row["images"], "sum": sums[i], "sum_outer": outers[i]})
              for i, row in enumerate(table.select(["model", "niche", "images"]).to_pylist())}
    tail = fold_tail(tail_rows_, lambda row: (row["model"], row["niche"]))
    return {key: states.get(key, FeatureMoments()).merge(tail.get(key, FeatureMoments()))
            for key in sorted(states.keys() | tail.keys())}


def bucket_moments(reader: Any, scorer_version: str, model: str, niche: str, start: int,
                   end: int) -> list[tuple[int, FeatureMoments]]:
    """Per-bucket moments (all source partitions merged) of one model x niche for the buckets
    starting in [start, end) (epoch s): the FID drift detector's input."""
    params = {"scorer_version": scorer_version, "model": model, "niche": niche, "start": int(start), "end": int(end)}
    marks = {"scorer_version": scorer_version, "model": model, "niche": niche, "from_s": int(start), "to_s": int(end)}
    table, tail_rows_ = consistent_read(reader, marks, lambda: reader.query(sql_files.report("fid_drift_buckets"), params),
                                        lambda: reader.query(sql_files.report("fid_drift_tail"), params))
    sums, outers = list_arrays(table, "feature_sum"), outer_arrays(table, "feature_sum_outer")
    states = {int(row["bucket_start"]): moments_from_row({"n": row["images"], "sum": sums[i], "sum_outer": outers[i]})
              for i, row in enumerate(table.select(["bucket_start", "images"]).to_pylist())}
    tail = fold_tail(tail_rows_, lambda row: int(row["bucket_start"]))
    return [(b, states.get(b, FeatureMoments()).merge(tail.get(b, FeatureMoments())))
            for b in sorted(states.keys() | tail.keys())]
