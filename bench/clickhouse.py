"""ClickHouse (embedded chDB) costs of Sentinel Stream's event log, by measurement.

Three parts, all on one fresh chDB data path (a temp dir; chDB allows one path per process),
migrated with ``warehouse.client.migrate`` exactly as the worker does:

1. **Arrow insert speed** through ``ClickHouseWarehouse.insert`` (clickhouse-connect's
   ``insert_arrow``) into ``sentinel.jobs`` and ``sentinel.scores`` (embeddings of ``--dim``
   floats, the tiny CLIP's width, and of 512 to compare), in batches of 500 and 10,000 rows.
   Each (table, dim, batch) config starts from an empty (TRUNCATEd) table, inserts fresh rows
   (never the same block twice: the tables deduplicate identical blocks), and is repeated
   ``--rounds`` times in interleaved order; rows/s is the median of the rounds.
2. **Quarterly report** (the real ``sql/reports/benchmark.sql`` through
   ``reports.report.benchmark()`` with the Pricing of ``pricing.toml``) at each of ``--sizes``
   jobs (one score with a ``--dim`` embedding per scored job), each loaded from scratch in
   batches of ``--load-batch`` rows. After loading, background merges are allowed to finish
   (bounded wait) so they do not run under the timings. Cold = the first run after the load
   with chDB's caches dropped (mark / uncompressed / query-condition caches; the OS page
   cache is not dropped); warm = median of 3 runs after that first one. Then ``--big`` jobs
   (default 10M) if the load, extrapolated from the largest ``--sizes`` load, fits in
   ``--big-max-load-s`` and on disk; otherwise skipped with the reason recorded.
3. **Windowed FID** (on the largest ``--sizes`` store, and again on the ``--big`` store if
   loaded, with a 1M-image window there): generated-side sufficient statistics (n, Σx, Σxxᵀ) for a
   (model, niche, scorer_version, time window) computed in SQL from ``sentinel.scores``
   embeddings (``MOMENTS_SQL``), turned into ``sentinel.fid.FeatureMoments`` and compared with
   ``fid()`` against a reference set, for windows of ``--fid-windows`` images (the busiest
   (model, niche) is topped up with extra score rows if the loaded data has fewer images than
   the largest window). Compared with: fetching the window's embeddings as Arrow and computing
   the moments in numpy; and pre-aggregated moments per (model, niche, scorer_version, hour)
   in a table with Array(Float64) columns (built once here with an INSERT ... SELECT), merged
   in SQL (``sumForEach`` over the window's buckets) or in Python (``FeatureMoments.merge``),
   plus one eigen-decomposition in ``fid()``. Windows are hour-aligned so both paths cover
   exactly the same rows and must give the same FID. Also: SQL moments vs numpy on a small
   window (rel 1e-9), and alternative SQL formulations of Σxxᵀ on two window sizes.

Data is synthetic but shaped like ``inference.trace``: its 8 models (2 API-priced, GPU types
priced in pricing.toml), their niche mixes and lognormal latencies, diurnal/weekly arrivals
over a quarter (2026Q1), random UUID job ids, ~97% of jobs scored, unit-norm embeddings
clustered per (model, niche).

Usage::

    python bench/clickhouse.py [--sizes 100000,1000000] [--dim 64] [--big 10000000]
                               [--out bench/results/clickhouse.json]

Prints Markdown tables and writes ``bench/results/clickhouse.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
import tomllib
from datetime import datetime, timedelta, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from inference.trace import NICHES, PROVIDER_API, TRACE_MODELS  # noqa: E402
from inference.traffic import NICHE_PROMPTS  # noqa: E402
from sentinel.cost import Pricing  # noqa: E402
from sentinel.fid import FeatureMoments, fid  # noqa: E402
from reports.report import benchmark  # noqa: E402
from warehouse.window import Window  # noqa: E402
from warehouse.rows import JOBS_SCHEMA, SCORES_SCHEMA  # noqa: E402
from warehouse.client import ClickHouseWarehouse, migrate  # noqa: E402
from _machine import cores_available, cpu_model as _cpu_model

RESULTS = Path(__file__).resolve().parent / "results" / "clickhouse.json"
QUARTER_START = datetime(2026, 1, 1, tzinfo=timezone.utc)
QUARTER_END = datetime(2026, 4, 1, tzinfo=timezone.utc)
SCORER_VERSION = "tiny-clip-v1"
REFERENCE_N = 20_000

# --------------------------------------------------------------------------- SQL under test

# Generated-side sufficient statistics of one window, straight from the event log. FINAL
# collapses re-delivered scores (at-least-once). `embedding * x` is array-times-scalar (a
# vectorised function, no inner lambda); Float32 * Float32 is Float64 in ClickHouse, and a
# product of two float32 values is exact in float64, so only the summation order differs
# from numpy. sum_outer is Σxxᵀ flattened row-major (D*D values).
MOMENTS_SQL = """
SELECT
    count()                                                   AS n,
    sumForEach(embedding)                                     AS sum,
    sumForEach(arrayFlatten(arrayMap(x -> embedding * x, embedding))) AS sum_outer
FROM sentinel.scores FINAL
WHERE model_id = {model:String} AND niche = {niche:String} AND scorer_version = {scorer_version:String}
  AND scored_at >= {start:DateTime64(3)} AND scored_at < {end:DateTime64(3)}
""".strip()

# Same rows, different formulations of the outer-product sum (for the variants table).
_WHERE = """
WHERE model_id = {model:String} AND niche = {niche:String} AND scorer_version = {scorer_version:String}
  AND scored_at >= {start:DateTime64(3)} AND scored_at < {end:DateTime64(3)}"""
MOMENTS_VARIANTS: dict[str, dict[str, Any]] = {
    "array*scalar, FINAL (main)": {"sql": MOMENTS_SQL, "layout": "full"},
    "nested lambda x -> arrayMap(y -> x * y, e), FINAL": {
        "sql": "SELECT count() AS n, sumForEach(embedding) AS sum, "
               "sumForEach(arrayFlatten(arrayMap(x -> arrayMap(y -> x * y, embedding), embedding))) AS sum_outer "
               "FROM sentinel.scores FINAL" + _WHERE,
        "layout": "full"},
    "upper triangle only (D(D+1)/2), FINAL": {
        "sql": "SELECT count() AS n, sumForEach(embedding) AS sum, "
               "sumForEach(arrayFlatten(arrayMap((x, i) -> arraySlice(embedding, i) * x, embedding, arrayEnumerate(embedding)))) AS sum_outer "
               "FROM sentinel.scores FINAL" + _WHERE,
        "layout": "triu"},
    "array*scalar, no FINAL": {"sql": MOMENTS_SQL.replace(" FINAL", ""), "layout": "full"},
    "array*scalar, FINAL, max_block_size=1024": {
        "sql": MOMENTS_SQL + "\nSETTINGS max_block_size = 1024", "layout": "full", "writer": True},
}

FETCH_SQL = "SELECT embedding FROM sentinel.scores FINAL" + _WHERE
# The same filter without the moments: the floor set by scanning the table (no index applies).
SCAN_SQL = "SELECT count() AS n FROM sentinel.scores FINAL" + _WHERE

BUCKETS_DDL = """
CREATE TABLE IF NOT EXISTS sentinel.bench_fid_moments
(
    model_id        LowCardinality(String),
    niche           LowCardinality(String),
    scorer_version  LowCardinality(String),
    bucket          DateTime('UTC'),
    n               UInt64,
    sum             Array(Float64),
    sum_outer       Array(Float64)
)
ENGINE = MergeTree
ORDER BY (model_id, niche, scorer_version, bucket)
""".strip()

BUCKETS_BUILD_SQL = """
INSERT INTO sentinel.bench_fid_moments
SELECT model_id, niche, scorer_version, toStartOfHour(scored_at) AS bucket,
       count(), sumForEach(embedding), sumForEach(arrayFlatten(arrayMap(x -> embedding * x, embedding)))
FROM sentinel.scores FINAL
WHERE model_id = {model:String} AND niche = {niche:String} AND scorer_version = {scorer_version:String}
GROUP BY model_id, niche, scorer_version, bucket
""".strip()

# Merge of the stored states of a window, in SQL: one row back.
BUCKETS_MERGE_SQL = """
SELECT count() AS buckets, sum(n) AS n, sumForEach(sum) AS sum, sumForEach(sum_outer) AS sum_outer
FROM sentinel.bench_fid_moments
WHERE model_id = {model:String} AND niche = {niche:String} AND scorer_version = {scorer_version:String}
  AND bucket >= {start:DateTime64(3)} AND bucket < {end:DateTime64(3)}
""".strip()

# The window's stored states as rows, merged in Python.
BUCKETS_ROWS_SQL = """
SELECT n, sum, sum_outer
FROM sentinel.bench_fid_moments
WHERE model_id = {model:String} AND niche = {niche:String} AND scorer_version = {scorer_version:String}
  AND bucket >= {start:DateTime64(3)} AND bucket < {end:DateTime64(3)}
ORDER BY bucket
""".strip()

CACHE_DROPS = ("SYSTEM DROP MARK CACHE", "SYSTEM DROP UNCOMPRESSED CACHE",
               "SYSTEM DROP QUERY CONDITION CACHE", "SYSTEM DROP PAGE CACHE", "SYSTEM DROP QUERY CACHE")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def med(xs: list[float]) -> float:
    return float(statistics.median(xs))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


# --------------------------------------------------------------------------- synthetic data

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def uuid_strings(rng: np.random.Generator, n: int) -> pa.Array:
    """n random version-4 UUID strings, built as one Arrow buffer (no Python strings)."""
    nib = rng.integers(0, 16, size=(n, 32), dtype=np.uint8)
    nib[:, 12] = 4
    nib[:, 16] = 8 + (nib[:, 16] & 3)
    chars = _HEX[nib]
    out = np.full((n, 36), ord("-"), dtype=np.uint8)
    out[:, 0:8], out[:, 9:13], out[:, 14:18] = chars[:, 0:8], chars[:, 8:12], chars[:, 12:16]
    out[:, 19:23], out[:, 24:36] = chars[:, 16:20], chars[:, 20:32]
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.tobytes()), pa.py_buffer(out.tobytes()))


def ts_array(ms: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(ms, dtype=np.int64), type=pa.timestamp("ms", tz="UTC"))


def list_array(flat: np.ndarray, dim: int) -> pa.Array:
    n = flat.size // dim
    offsets = pa.array(np.arange(0, dim * (n + 1), dim, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(flat.reshape(-1)))


class Synth:
    """Jobs and scores shaped like ``inference.trace.generate_trace`` (vectorised, streaming)."""

    def __init__(self, pricing: Pricing, dim: int, seed: int) -> None:
        self.models = TRACE_MODELS
        self.dim = dim
        self.seed = seed
        self._stream = 0
        for m in self.models:
            if m.provider != PROVIDER_API and m.gpu_type not in pricing.gpu_usd_per_hour:
                raise SystemExit(f"model {m.model}: GPU type {m.gpu_type!r} not priced in pricing.toml")
        shares = np.array([m.share for m in self.models])
        self.model_cdf = np.cumsum(shares / shares.sum())
        self.niche_cdf = np.cumsum(np.array([m.niche_mix for m in self.models]), axis=1)
        self.api = np.array([m.provider == PROVIDER_API for m in self.models])
        self.inf_median = np.array([m.inference_median_s for m in self.models])
        self.inf_sigma = np.array([m.inference_sigma for m in self.models])
        self.cold_median = np.array([m.cold_start_median_s for m in self.models])
        self.slow_prob = np.array([m.slow_call_prob for m in self.models])
        self.api_cost = np.array([m.api_cost_usd or 0.0 for m in self.models])
        self.model_names = pa.array([m.model for m in self.models])
        self.versions = pa.array([m.version for m in self.models])
        self.providers = pa.array([m.provider for m in self.models])
        self.gpu_types = pa.array([m.gpu_type for m in self.models])
        self.nodes = pa.array([f"{m.model}-node-{k}" if m.provider != PROVIDER_API else f"api-gateway-{k}"
                               for m in self.models for k in range(4)])
        self.niches = pa.array(list(NICHES))
        self.prompts = pa.array([p for niche in NICHES for p in NICHE_PROMPTS[niche]])
        self.prompts_per_niche = len(NICHE_PROMPTS[NICHES[0]])
        crng = np.random.default_rng(seed + 999)
        base = crng.standard_normal(dim)
        mo = crng.standard_normal((len(self.models), 1, dim))
        no = crng.standard_normal((1, len(NICHES), dim))
        c = base + 0.6 * mo + 0.4 * no
        self.centroids = c / np.linalg.norm(c, axis=-1, keepdims=True)
        self.clip_mean = 27.0 + 4.0 * crng.random(len(self.models))

    def rng(self) -> np.random.Generator:
        self._stream += 1
        return np.random.default_rng([self.seed, self._stream])

    @staticmethod
    def arrivals(rng: np.random.Generator, n: int, start: datetime = QUARTER_START,
                 end: datetime = QUARTER_END) -> np.ndarray:
        """n sorted epoch-ms times over [start, end): diurnal (peak 15:00 UTC) x weekend 0.75."""
        t0, t1 = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
        got, parts = 0, []
        while got < n:
            m = int((n - got) * 1.9) + 64
            t = rng.integers(t0, t1, m)
            hour = (t / 3.6e6) % 24.0
            weekday = (t // 86_400_000 + 3) % 7
            rate = (1.0 + 0.7 * np.cos(2 * np.pi * (hour - 15.0) / 24.0)) * np.where(weekday >= 5, 0.75, 1.0) / 1.7
            keep = t[rng.random(m) < rate]
            parts.append(keep)
            got += keep.size
        return np.sort(np.concatenate(parts)[:n])

    def embeddings(self, rng: np.random.Generator, model: np.ndarray, niche: np.ndarray, dim: int) -> np.ndarray:
        if dim == self.dim:
            c = self.centroids[model, niche]
        else:  # another width (insert-speed comparison only): any unit-ish vectors will do
            c = np.zeros((model.size, dim), dtype=np.float32)
            c[:, 0] = 1.0
        x = c + rng.standard_normal((model.size, dim), dtype=np.float32) * np.float32(0.6 / np.sqrt(dim))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x.astype(np.float32)

    def batch(self, requested_ms: np.ndarray, offset: int, dim: int | None = None,
              scored_frac: float = 0.97) -> tuple[pa.Table, pa.Table]:
        """Jobs requested at ``requested_ms`` and their scores (JOBS_SCHEMA, SCORES_SCHEMA)."""
        rng = self.rng()
        dim = dim or self.dim
        n = requested_ms.size
        model = np.minimum(np.searchsorted(self.model_cdf, rng.random(n), side="right"), len(self.models) - 1)
        niche = np.minimum((rng.random(n)[:, None] >= self.niche_cdf[model]).sum(axis=1), len(NICHES) - 1)
        api = self.api[model]
        z = rng.standard_normal((6, n))
        dispatch = 30.0 * np.exp(0.5 * z[0])
        queue = rng.exponential(40.0, n)
        cold = (~api) & (rng.random(n) < 0.01)
        cold_ms = np.where(cold, self.cold_median[model] * 1000.0 * np.exp(0.3 * z[1]), 0.0)
        inference = self.inf_median[model] * 1000.0 * np.exp(self.inf_sigma[model] * z[2])
        slow = rng.random(n) < self.slow_prob[model]
        inference = np.where(slow, inference * rng.uniform(3.0, 8.0, n), inference)
        encode = np.where(api, np.nan, 20.0 * np.exp(0.3 * z[3]))
        delivery = 40.0 * np.exp(0.6 * z[4])
        req = requested_ms.astype(np.int64)
        started = req + np.round(dispatch + queue).astype(np.int64)
        completed = started + np.round(cold_ms + inference + np.nan_to_num(encode)).astype(np.int64)
        delivered = completed + np.round(delivery).astype(np.int64)
        has_ref = rng.random(n) < 0.15
        job_ids = uuid_strings(rng, n)
        jobs = pa.table({
            "job_id": job_ids,
            "model_id": self.model_names.take(model),
            "model_version": self.versions.take(model),
            "provider": self.providers.take(model),
            "niche": self.niches.take(niche),
            "prompt": self.prompts.take(niche * self.prompts_per_niche + rng.integers(0, self.prompts_per_niche, n)),
            "seed": pa.array(rng.integers(0, 2**31, n), mask=api),
            "has_reference": pa.array(has_ref),
            "media_type": pa.array(["image/webp"]).take(np.zeros(n, np.int64)),
            "requested_at": ts_array(req),
            "started_at": ts_array(started),
            "completed_at": ts_array(completed),
            "delivered_at": ts_array(delivered),
            "latency_ms": (delivered - req).astype(np.float64),
            "cold_start": pa.array(cold),
            "cold_start_ms": cold_ms,
            "inference_ms": inference,
            "encode_ms": pa.array(encode, mask=api),
            "gpu_type": self.gpu_types.take(model),
            "gpu_seconds": np.where(api, 0.0, (cold_ms + inference + np.nan_to_num(encode)) / 1000.0),
            "api_cost_usd": pa.array(self.api_cost[model], mask=~api),
            "node_id": self.nodes.take(model * 4 + rng.integers(0, 4, n)),
            "image_bytes": pa.array(np.round(600_000 * np.exp(0.4 * z[5])).astype(np.uint32)),
            "source_partition": pa.array(rng.integers(0, 8, n).astype(np.uint32)),
            "source_offset": pa.array((offset + np.arange(n)).astype(np.uint64)),
        }, schema=JOBS_SCHEMA)
        scored = np.flatnonzero(rng.random(n) < scored_frac)
        scores = self.scores(rng, job_ids.take(scored), model[scored], niche[scored],
                             delivered[scored], has_ref[scored], dim)
        return jobs, scores

    def scores(self, rng: np.random.Generator, job_ids: pa.Array, model: np.ndarray, niche: np.ndarray,
               delivered_ms: np.ndarray, has_ref: np.ndarray, dim: int) -> pa.Table:
        k = model.size
        flagged = rng.random(k) < 0.003
        flag_offsets = np.concatenate([[0], np.cumsum(flagged)]).astype(np.int32)
        return pa.table({
            "job_id": job_ids,
            "scorer_version": pa.array([SCORER_VERSION]).take(np.zeros(k, np.int64)),
            "model_id": self.model_names.take(model),
            "niche": self.niches.take(niche),
            "scored_at": ts_array(delivered_ms + np.round(300.0 * np.exp(0.5 * rng.standard_normal(k))).astype(np.int64)),
            "clip_prompt_score": self.clip_mean[model] + 3.0 * rng.standard_normal(k),
            "clip_reference_score": pa.array(60.0 + 10.0 * rng.standard_normal(k), mask=~has_ref),
            "embedding": list_array(self.embeddings(rng, model, niche, dim), dim),
            "flags": pa.ListArray.from_arrays(pa.array(flag_offsets),
                                              pa.array(["low_clip"]).take(np.zeros(int(flagged.sum()), np.int64))),
        }, schema=SCORES_SCHEMA)

    def scores_only(self, n: int, model: int, niche: int) -> pa.Table:
        """Extra scores for one (model, niche) over the quarter (FID window top-up)."""
        rng = self.rng()
        t = self.arrivals(rng, n)
        return self.scores(rng, uuid_strings(rng, n), np.full(n, model), np.full(n, niche), t,
                           np.zeros(n, bool), self.dim)


# --------------------------------------------------------------------------- warehouse helpers


class Bench:
    def __init__(self, path: Path) -> None:
        self.w = ClickHouseWarehouse(f"chdb://{path}")
        migrate(self.w)

    def sql(self, text: str, parameters: dict[str, Any] | None = None) -> pa.Table:
        """A read through the writer session (system tables, SETTINGS clauses)."""
        with self.w._write_lock:
            return self.w.writer.query_arrow(text, parameters=dict(parameters or {}))

    def scalar(self, text: str, parameters: dict[str, Any] | None = None) -> Any:
        t = self.sql(text, parameters)
        return t.column(0).to_pylist()[0]

    def truncate(self, *tables: str) -> None:
        for t in tables:
            self.w.command(f"TRUNCATE TABLE {t}")

    def drop_caches(self) -> list[str]:
        done = []
        for stmt in CACHE_DROPS:
            try:
                self.w.command(stmt)
                done.append(stmt)
            except Exception:  # not every cache exists in every build
                pass
        return done

    def merges_running(self) -> int:
        return int(self.scalar("SELECT count() FROM system.merges WHERE database = 'sentinel'"))

    def wait_merges(self, limit_s: float = 150.0) -> dict[str, Any]:
        t0 = time.perf_counter()
        quiet = 0
        while time.perf_counter() - t0 < limit_s:
            quiet = quiet + 1 if self.merges_running() == 0 else 0
            if quiet >= 3:
                break
            time.sleep(0.5)
        return {"waited_s": time.perf_counter() - t0, "quiet": quiet >= 3}

    def parts(self) -> dict[str, dict[str, int]]:
        t = self.sql("SELECT table, count() AS parts, sum(rows) AS rows, sum(bytes_on_disk) AS bytes "
                     "FROM system.parts WHERE database = 'sentinel' AND active GROUP BY table ORDER BY table")
        return {r["table"]: {"parts": r["parts"], "rows": r["rows"], "bytes": r["bytes"]} for r in t.to_pylist()}

    def close(self) -> None:
        self.w.close()


# --------------------------------------------------------------------------- part 1: inserts


def part_inserts(b: Bench, synth: Synth, dims: list[int], rounds: int, batches_by_size: dict[int, int]) -> list[dict]:
    configs = [("sentinel.jobs", None, bs) for bs in batches_by_size]
    configs += [("sentinel.scores", d, bs) for d in dims for bs in batches_by_size]
    res = {c: {"rows_per_s": [], "insert_ms": []} for c in configs}
    t_base = int(QUARTER_START.timestamp() * 1000)
    offset = 0
    for r in range(rounds):
        order = configs if r % 2 == 0 else configs[::-1]
        for cfg in order:
            table, dim, bs = cfg
            nb = batches_by_size[bs]
            tables = []
            for _ in range(nb):  # generated before timing; fresh rows every round
                req = t_base + np.sort(synth.rng().integers(0, 86_400_000 * 91, bs))
                jobs, scores = synth.batch(req, offset, dim=dim, scored_frac=1.0)
                offset += bs
                tables.append(jobs if table == "sentinel.jobs" else scores)
            b.truncate(table)
            each = []
            t0 = time.perf_counter()
            for t in tables:
                dt, _ = timed(lambda t=t: b.w.insert(table, t))
                each.append(dt)
            total = time.perf_counter() - t0
            rows = sum(t.num_rows for t in tables)
            res[cfg]["rows_per_s"].append(rows / total)
            res[cfg].setdefault("loadavg_1m", []).append(os.getloadavg()[0])
            res[cfg]["insert_ms"].append(med(each) * 1e3)
            res[cfg]["arrow_mb_per_batch"] = tables[0].nbytes / 1e6
            res[cfg]["rows"] = rows
            got = b.scalar(f"SELECT count() FROM {table}")
            if got != rows:
                raise RuntimeError(f"{table}: inserted {rows} rows, table has {got}")
            log(f"  insert {table} dim={dim} batch={bs} round {r + 1}: {rows / total:,.0f} rows/s")
    b.truncate("sentinel.jobs", "sentinel.scores")
    out = []
    for (table, dim, bs), v in res.items():
        out.append({"table": table, "dim": dim, "batch_rows": bs, "batches": batches_by_size[bs],
                    "rows_per_round": v["rows"], "rows_per_s": med(v["rows_per_s"]),
                    "rows_per_s_rounds": v["rows_per_s"], "median_insert_ms": med(v["insert_ms"]),
                    "arrow_mb_per_batch": v["arrow_mb_per_batch"], "loadavg_1m": v["loadavg_1m"]})
    return out


# --------------------------------------------------------------------------- part 2: report


def load(b: Bench, synth: Synth, n: int, batch: int) -> dict[str, Any]:
    b.truncate("sentinel.jobs", "sentinel.scores")
    t_wall = time.perf_counter()
    t_gen, arr = timed(lambda: synth.arrivals(synth.rng(), n))
    t_jobs = t_scores = 0.0
    n_scores = 0
    for lo in range(0, n, batch):
        dt, (jobs, scores) = timed(lambda lo=lo: synth.batch(arr[lo:lo + batch], lo))
        t_gen += dt
        dt, _ = timed(lambda: b.w.insert("sentinel.jobs", jobs))
        t_jobs += dt
        dt, _ = timed(lambda: b.w.insert("sentinel.scores", scores))
        t_scores += dt
        n_scores += scores.num_rows
        if (lo // batch) % 20 == 19:
            log(f"    loaded {lo + batch:,}/{n:,}")
    wall = time.perf_counter() - t_wall
    merges = b.wait_merges()
    parts = b.parts()
    if parts["jobs"]["rows"] < n or b.scalar("SELECT count() FROM sentinel.jobs FINAL") != n:
        raise RuntimeError(f"loaded {n} jobs but the table has {parts['jobs']['rows']}")
    return {"jobs": n, "scores": n_scores, "batch_rows": batch, "generate_s": t_gen,
            "insert_jobs_s": t_jobs, "insert_scores_s": t_scores, "load_wall_s": wall,
            "jobs_rows_per_s": n / t_jobs, "scores_rows_per_s": n_scores / t_scores,
            "merge_wait": merges, "parts": parts}


def report_times(b: Bench, pricing: Pricing, warm_runs: int = 3) -> dict[str, Any]:
    window = Window(QUARTER_START, QUARTER_END)
    merges = []

    def run() -> dict[str, Any]:
        merges.append(b.merges_running())
        return benchmark(b.w, pricing, window)

    dropped = b.drop_caches()
    cold, rep = timed(run)
    warm = []
    for _ in range(warm_runs):
        dt, rep = timed(run)
        warm.append(dt)
    total = sum(m["jobs"] for m in rep["models"])
    return {"cold_s": cold, "warm_s": med(warm), "warm_runs_s": warm, "caches_dropped": dropped,
            "merges_running_at_each_run": merges, "loadavg_1m": os.getloadavg()[0],
            "model_rows": len(rep["models"]), "niche_rows": len(rep["niches"]), "jobs_in_report": total,
            "models": rep["models"]}


# --------------------------------------------------------------------------- part 3: FID


def moments_from(table: pa.Table, layout: str = "full") -> FeatureMoments:
    n = int(table.column("n")[0].as_py())
    s = np.asarray(table.column("sum")[0].values.to_numpy(zero_copy_only=False), dtype=np.float64)
    so = np.asarray(table.column("sum_outer")[0].values.to_numpy(zero_copy_only=False), dtype=np.float64)
    d = s.size
    if layout == "triu":
        m = np.zeros((d, d))
        m[np.triu_indices(d)] = so
        so = m + np.triu(m, 1).T
    else:
        so = so.reshape(d, d)
    return FeatureMoments(n, s, so)


def rel_err(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = float(np.max(np.abs(b))) or 1.0
    return {"max_abs_over_max": float(np.max(np.abs(a - b)) / scale),
            "max_elementwise_rel": float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))}


def fetch_numpy(b: Bench, params: dict[str, Any], dim: int) -> FeatureMoments:
    t = b.w.query(FETCH_SQL, params)
    col = t.column("embedding").combine_chunks()
    x = col.values.to_numpy(zero_copy_only=False).reshape(-1, dim).astype(np.float64)
    return FeatureMoments(x.shape[0], x.sum(axis=0), x.T @ x)


def python_merge(b: Bench, params: dict[str, Any], dim: int) -> tuple[FeatureMoments, int]:
    t = b.w.query(BUCKETS_ROWS_SQL, params)
    ns = t.column("n").to_numpy()
    sums = t.column("sum").combine_chunks().values.to_numpy(zero_copy_only=False).reshape(-1, dim)
    outs = t.column("sum_outer").combine_chunks().values.to_numpy(zero_copy_only=False).reshape(-1, dim, dim)
    acc = FeatureMoments()
    for i in range(len(ns)):
        acc = acc.merge(FeatureMoments(int(ns[i]), sums[i], outs[i]))
    return acc, len(ns)


def repeat(fn: Callable[[], Any], runs: int) -> tuple[float, list[float], Any]:
    ts, out = [], None
    for _ in range(runs):
        dt, out = timed(fn)
        ts.append(dt)
    return med(ts), ts, out


def part_fid(b: Bench, synth: Synth, jobs_loaded: int, windows: list[int], variant_windows: list[int],
             slow_s: float, variant_rounds: int = 5) -> dict[str, Any]:
    dim = synth.dim
    top = b.sql("SELECT model_id, niche, count() AS n FROM sentinel.scores WHERE scorer_version = {sv:String} "
                "GROUP BY model_id, niche ORDER BY n DESC, model_id, niche LIMIT 1", {"sv": SCORER_VERSION}).to_pylist()[0]
    model, niche, have = top["model_id"], top["niche"], int(top["n"])
    need = int(max(windows) * 1.05) + 500
    topup = {"rows": 0, "insert_s": 0.0}
    if have < need:
        mi = [m.model for m in synth.models].index(model)
        ni = list(NICHES).index(niche)
        extra = need - have
        log(f"  FID: topping up {model}/{niche} from {have:,} to {need:,} images")
        t_ins = 0.0
        for lo in range(0, extra, 50_000):
            scores = synth.scores_only(min(50_000, extra - lo), mi, ni)
            dt, _ = timed(lambda: b.w.insert("sentinel.scores", scores))
            t_ins += dt
        topup = {"rows": extra, "insert_s": t_ins}
        b.wait_merges()
    base = {"model": model, "niche": niche, "scorer_version": SCORER_VERSION}
    total = b.scalar("SELECT count() FROM sentinel.scores FINAL WHERE model_id = {model:String} AND niche = {niche:String}",
                     {"model": model, "niche": niche})
    table_rows = b.scalar("SELECT count() FROM sentinel.scores")
    last = b.scalar("SELECT max(scored_at) FROM sentinel.scores WHERE model_id = {model:String} AND niche = {niche:String}",
                    {"model": model, "niche": niche})
    end = (last.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)).astimezone(timezone.utc)

    # Reference set: a different distribution (shifted centroid), numpy moments.
    rrng = np.random.default_rng(synth.seed + 7)
    ref_c = synth.centroids.mean(axis=(0, 1))
    ref_x = ref_c + rrng.standard_normal((REFERENCE_N, dim)) * (0.6 / np.sqrt(dim))
    ref_x /= np.linalg.norm(ref_x, axis=1, keepdims=True)
    reference = FeatureMoments.from_features(ref_x.astype(np.float32))

    # Pre-aggregated states per hour (one-off build here; the worker would add per batch).
    b.w.command(BUCKETS_DDL)
    b.w.command("TRUNCATE TABLE sentinel.bench_fid_moments")
    t_build, _ = timed(lambda: b.w.command(BUCKETS_BUILD_SQL, {**base}))
    buckets_total = b.scalar("SELECT count() FROM sentinel.bench_fid_moments")
    b.w.command("OPTIMIZE TABLE sentinel.bench_fid_moments FINAL")
    parts_scores = b.parts()["scores"]["parts"]
    bucket_bytes = b.scalar("SELECT sum(bytes_on_disk) FROM system.parts WHERE database = 'sentinel' "
                            "AND table = 'bench_fid_moments' AND active")

    def window_params(n_images: int) -> dict[str, Any]:
        ts = b.scalar("SELECT scored_at FROM sentinel.scores FINAL WHERE model_id = {model:String} AND niche = {niche:String} "
                      "AND scorer_version = {scorer_version:String} ORDER BY scored_at DESC LIMIT 1 OFFSET {k:UInt64}",
                      {**base, "k": n_images - 1})
        start = ts.replace(minute=0, second=0, microsecond=0).astimezone(timezone.utc)
        return {**base, **Window(start, end).params()}

    rows = []
    check = None
    for n_images in windows:
        p = window_params(n_images)
        log(f"  FID window ~{n_images:,} images: {p['start']} -> {p['end']}")
        b.drop_caches()
        cold, t_raw = timed(lambda: b.w.query(MOMENTS_SQL, p))
        raw = moments_from(t_raw)
        runs = 3 if cold < slow_s else 1
        warm, warm_runs, _ = repeat(lambda: b.w.query(MOMENTS_SQL, p), runs)
        t_to_moments, _, _ = repeat(lambda: moments_from(t_raw), 3)
        f_np, f_np_runs, fetched = repeat(lambda: fetch_numpy(b, p, dim), runs)
        scan, scan_runs, _ = repeat(lambda: b.w.query(SCAN_SQL, p), runs)
        if runs == 1:
            log(f"    (slow: raw SQL and fetch timed once warm, cold {cold:.1f}s >= {slow_s}s)")
        b.drop_caches()
        bucket_cold, t_b = timed(lambda: b.w.query(BUCKETS_MERGE_SQL, p))
        bucket_warm, bucket_runs, t_b = repeat(lambda: b.w.query(BUCKETS_MERGE_SQL, p), 3)
        merged = moments_from(t_b)
        n_buckets = int(t_b.column("buckets")[0].as_py())
        pm_t, _, (pm, _) = repeat(lambda: python_merge(b, p, dim), 3)
        fid_t, _, fid_raw = repeat(lambda: fid(raw, reference), 5)
        fid_bucket = fid(merged, reference)
        row = {
            "target_images": n_images, "images": raw.n, "window": {"start": p["start"], "end": p["end"]},
            "buckets": n_buckets,
            "raw_sql_cold_s": cold, "raw_sql_warm_s": warm, "raw_sql_warm_runs_s": warm_runs,
            "raw_result_to_moments_s": t_to_moments,
            "fetch_numpy_warm_s": f_np, "fetch_numpy_runs_s": f_np_runs,
            "scan_only_warm_s": scan, "scan_only_runs_s": scan_runs, "loadavg_1m": os.getloadavg()[0],
            "buckets_sql_merge_cold_s": bucket_cold, "buckets_sql_merge_warm_s": bucket_warm,
            "buckets_python_merge_s": pm_t,
            "fid_s": fid_t,
            "fid_raw": fid_raw, "fid_buckets": fid_bucket, "fid_fetch_numpy": fid(fetched, reference),
            "fid_python_merge": fid(pm, reference),
            "buckets_vs_raw_moments": {"n_equal": merged.n == raw.n == pm.n == fetched.n,
                                       "sum": rel_err(merged.sum, raw.sum),
                                       "sum_outer": rel_err(merged.sum_outer, raw.sum_outer)},
            "fid_rel_diff_buckets_vs_raw": abs(fid_bucket - fid_raw) / abs(fid_raw),
        }
        rows.append(row)
        log(f"    n={raw.n:,} raw cold {cold:.3f}s warm {warm:.3f}s | scan only {scan:.3f}s | fetch+numpy {f_np:.3f}s | "
            f"{n_buckets} buckets: SQL merge {bucket_warm * 1e3:.1f} ms, Python merge {pm_t * 1e3:.1f} ms | "
            f"fid() {fid_t * 1e3:.2f} ms | FID {fid_raw:.6f} / {fid_bucket:.6f}")
        if check is None:  # smallest window: SQL moments vs numpy on the same rows
            xs = b.w.query(FETCH_SQL, p).column("embedding").combine_chunks()
            x = xs.values.to_numpy(zero_copy_only=False).reshape(-1, dim)
            ref_np = FeatureMoments.from_features(x)
            check = {"images": raw.n, "n_equal": raw.n == ref_np.n,
                     "sum": rel_err(raw.sum, ref_np.sum), "sum_outer": rel_err(raw.sum_outer, ref_np.sum_outer),
                     "fid_rel_diff": abs(fid(raw, reference) - fid(ref_np, reference)) / fid(ref_np, reference)}
            check["pass_rel_1e-9"] = bool(check["n_equal"] and np.allclose(raw.sum, ref_np.sum, rtol=1e-9, atol=0)
                                          and np.allclose(raw.sum_outer, ref_np.sum_outer, rtol=1e-9, atol=0))

    # SQL formulations of Σxxᵀ on the same rows: one warm-up pass, then `variant_rounds` passes
    # over all variants in rotated order; per-pass ratios to the main variant are robust to the
    # load swings of a shared machine.
    variants = []
    names = list(MOMENTS_VARIANTS)
    for n_images in variant_windows:
        p = window_params(n_images)

        def run(name: str, p=p) -> pa.Table:
            v = MOMENTS_VARIANTS[name]
            return b.sql(v["sql"], p) if v.get("writer") else b.w.query(v["sql"], p)

        first, got = {}, {}
        for name in names:
            first[name], got[name] = timed(lambda name=name: run(name))
        times: dict[str, list[float]] = {name: [] for name in names}
        for r in range(variant_rounds):
            k = r % len(names)
            for name in names[k:] + names[:k]:
                dt, _ = timed(lambda name=name: run(name))
                times[name].append(dt)
        main_name = names[0]
        want = moments_from(got[main_name], MOMENTS_VARIANTS[main_name]["layout"])
        for name in names:
            m = moments_from(got[name], MOMENTS_VARIANTS[name]["layout"])
            ratios = [t / t0 for t, t0 in zip(times[name], times[main_name])]
            variants.append({"variant": name, "target_images": n_images, "images": m.n, "first_s": first[name],
                             "warm_s": med(times[name]), "warm_runs_s": times[name],
                             "ratio_to_main": med(ratios), "ratios_to_main": ratios,
                             "loadavg_1m": os.getloadavg()[0],
                             "sum_outer_vs_main": rel_err(m.sum_outer, want.sum_outer)})
            log(f"    variant [{name}] n={m.n:,}: warm {med(times[name]):.3f}s, x{med(ratios):.2f} of main")

    # fid() alone at 512 (numpy eigvals of a 512x512 product), for scale.
    r512 = np.random.default_rng(1)
    a = FeatureMoments.from_features(r512.standard_normal((2000, 512)))
    c = FeatureMoments.from_features(r512.standard_normal((2000, 512)) + 0.1)
    fid512, _, _ = repeat(lambda: fid(a, c), 3)
    return {"jobs_loaded": jobs_loaded, "model": model, "niche": niche, "scorer_version": SCORER_VERSION, "dim": dim,
            "images_in_model_niche": total, "scores_table_rows": table_rows, "topup": topup,
            "reference_images": REFERENCE_N,
            "scores_parts": parts_scores,
            "buckets": {"granularity": "hour", "rows": buckets_total, "build_s": t_build, "bytes_on_disk": bucket_bytes,
                        "bytes_per_bucket": bucket_bytes / max(1, buckets_total)},
            "windows": rows, "sql_vs_numpy_check": check, "variants": variants, "fid_only_dim512_s": fid512}


# --------------------------------------------------------------------------- output


def machine(b: Bench) -> dict[str, Any]:
    cores = cores_available()
    cpu_model = _cpu_model() or None
    import chdb

    return {
        "processor": platform.processor(), "cpu_model": cpu_model, "machine": platform.machine(),
        "platform": platform.platform(), "cpu_count": os.cpu_count(), "cores_available": cores,
        "python": sys.version.split()[0], "python_impl": platform.python_implementation(),
        "versions": {"chdb": chdb.__version__, "clickhouse_engine": b.scalar("SELECT version()"),
                     "clickhouse-connect": metadata.version("clickhouse-connect"),
                     "pyarrow": pa.__version__, "numpy": np.__version__},
        "clickhouse_settings": {k: b.scalar(f"SELECT getSetting('{k}')")
                                for k in ("max_threads", "max_block_size", "compile_expressions")},
    }


def fmt_int(v: float) -> str:
    return f"{v:,.0f}"


def tables_md(doc: dict[str, Any]) -> str:
    out = []
    m = doc["machine"]
    out.append(f"## ClickHouse (embedded chDB {m['versions']['chdb']}, engine {m['versions']['clickhouse_engine']}) "
               f"benchmark\n\nMachine: {m['cpu_model'] or m['processor'] or m['machine']}, "
               f"{m['cores_available']}/{m['cpu_count']} cores, Python {m['python']}; "
               f"clickhouse-connect {m['versions']['clickhouse-connect']}, pyarrow {m['versions']['pyarrow']}. "
               f"max_threads={m['clickhouse_settings']['max_threads']}.\n")
    out.append("### 1. Arrow insert speed (ClickHouseWarehouse.insert; median of rounds)\n")
    out.append("| table | embedding dim | batch rows | inserts/round | rows/s | rows/s per round | median insert ms "
               "| Arrow MB/batch | load avg per round |")
    out.append("|---|---:|---:|---:|---:|---|---:|---:|---|")
    for r in doc["inserts"]:
        out.append(f"| {r['table']} | {r['dim'] or '-'} | {r['batch_rows']:,} | {r['batches']} | {fmt_int(r['rows_per_s'])} "
                   f"| {' / '.join(fmt_int(x) for x in r['rows_per_s_rounds'])} | {r['median_insert_ms']:.1f} "
                   f"| {r['arrow_mb_per_batch']:.2f} | {' / '.join(f'{x:.1f}' for x in r['loadavg_1m'])} |")
    out.append("\n### 2. Quarterly report (reports.report.benchmark, sql/reports/benchmark.sql)\n")
    out.append("| jobs | scores | load wall s | generate s | jobs insert rows/s | scores insert rows/s | parts jobs/scores "
               "| disk MB | report cold s | report warm s (median of 3) | warm runs s | load avg |")
    out.append("|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|---:|")
    for r in doc["report"]["sizes"]:
        ld, rp = r["load"], r["report"]
        disk = sum(v["bytes"] for v in ld["parts"].values()) / 1e6
        out.append(f"| {ld['jobs']:,} | {ld['scores']:,} | {ld['load_wall_s']:.1f} | {ld['generate_s']:.1f} "
                   f"| {fmt_int(ld['jobs_rows_per_s'])} | {fmt_int(ld['scores_rows_per_s'])} "
                   f"| {ld['parts']['jobs']['parts']}/{ld['parts']['scores']['parts']} | {disk:,.0f} "
                   f"| {rp['cold_s']:.3f} | {rp['warm_s']:.3f} | {' / '.join(f'{x:.3f}' for x in rp['warm_runs_s'])} "
                   f"| {rp['loadavg_1m']:.1f} |")
    big = doc["report"]["big"]
    out.append(f"\n{big['size']:,} jobs: {big['decision']}")
    for i, f in enumerate(doc["fid"]):
        out.append(f"\n### 3{'abcdef'[i]}. Windowed FID on the {f['jobs_loaded']:,}-job store ({f['model']} / {f['niche']}, "
                   f"dim {f['dim']}; {f['images_in_model_niche']:,} images of it in the quarter; scores table "
                   f"{f['scores_table_rows']:,} rows in {f['scores_parts']} parts)\n")
        bk = f["buckets"]
        out.append(f"Hourly moment buckets: {bk['rows']:,} rows built in {bk['build_s']:.1f} s "
                   f"({bk['bytes_on_disk'] / 1e6:.1f} MB on disk, {bk['bytes_per_bucket'] / 1e3:.1f} kB/bucket). "
                   f"Top-up rows: {f['topup']['rows']:,}. Reference: {f['reference_images']:,} images. "
                   f"Warm = median of 3 after the cold run (1 run when cold >= --slow-s).\n")
        out.append("| images in window | hour buckets | raw SQL cold s | raw SQL warm s | scan only (count() FINAL) s "
                   "| fetch Arrow + numpy s "
                   "| buckets: SQL merge ms (cold / warm) | buckets: Python merge ms | fid() ms | FID raw | FID buckets "
                   "| rel diff | load avg |")
        out.append("|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|")
        for r in f["windows"]:
            out.append(f"| {r['images']:,} | {r['buckets']:,} | {r['raw_sql_cold_s']:.3f} | {r['raw_sql_warm_s']:.3f} "
                       f"| {r['scan_only_warm_s']:.3f} | {r['fetch_numpy_warm_s']:.3f} | {r['buckets_sql_merge_cold_s'] * 1e3:.1f} / "
                       f"{r['buckets_sql_merge_warm_s'] * 1e3:.1f} | {r['buckets_python_merge_s'] * 1e3:.1f} "
                       f"| {r['fid_s'] * 1e3:.2f} | {r['fid_raw']:.6f} | {r['fid_buckets']:.6f} "
                       f"| {r['fid_rel_diff_buckets_vs_raw']:.1e} | {r['loadavg_1m']:.1f} |")
        c = f["sql_vs_numpy_check"]
        out.append(f"\nSQL moments vs numpy on {c['images']:,} images: n equal {c['n_equal']}; Σx max|Δ|/max = "
                   f"{c['sum']['max_abs_over_max']:.1e} (elementwise max rel {c['sum']['max_elementwise_rel']:.1e}); "
                   f"Σxxᵀ max|Δ|/max = {c['sum_outer']['max_abs_over_max']:.1e} (elementwise max rel "
                   f"{c['sum_outer']['max_elementwise_rel']:.1e}); FID rel diff {c['fid_rel_diff']:.1e}; "
                   f"pass rel 1e-9: {c['pass_rel_1e-9']}. fid() alone at dim 512: {f['fid_only_dim512_s'] * 1e3:.1f} ms.\n")
        if f["variants"]:
            out.append(f"#### SQL formulations of Σxxᵀ (same window; one warm-up pass, then "
                       f"{len(f['variants'][0]['warm_runs_s'])} interleaved passes: median time and median per-pass "
                       f"ratio to the main query)\n")
            out.append("| variant | images | first s | warm s (median) | time / main (median of passes) "
                       "| Σxxᵀ vs main (max abs/max) |")
            out.append("|---|---:|---:|---:|---:|---:|")
            for v in f["variants"]:
                out.append(f"| {v['variant']} | {v['images']:,} | {v['first_s']:.3f} | {v['warm_s']:.3f} "
                           f"| {v['ratio_to_main']:.2f} | {v['sum_outer_vs_main']['max_abs_over_max']:.1e} |")
    out.append(f"\nTotal run time {doc['elapsed_s']:.0f} s. Load avg = 1-minute load average of the machine "
               f"({doc['machine']['cores_available']} cores) when the row was measured: other work shares the CPUs.")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100000,1000000", help="jobs loaded for the report timings")
    ap.add_argument("--dim", type=int, default=64, help="embedding width (tiny CLIP: 64)")
    ap.add_argument("--big", type=int, default=10_000_000, help="extra size tried if it fits (0 = never)")
    ap.add_argument("--big-max-load-s", type=float, default=360.0, help="skip --big if its estimated load is longer")
    ap.add_argument("--load-batch", type=int, default=50_000, help="rows per insert when loading")
    ap.add_argument("--rounds", type=int, default=3, help="insert-speed rounds (median reported)")
    ap.add_argument("--fid-windows", default="1000,10000,100000",
                    help="FID window sizes (images) on the largest --sizes store")
    ap.add_argument("--big-fid-windows", default="1000,10000,100000,1000000",
                    help="FID window sizes (images) on the --big store")
    ap.add_argument("--variant-windows", default="10000,100000", help="windows for the SQL-variants table")
    ap.add_argument("--variant-rounds", type=int, default=5, help="interleaved timing passes over the SQL variants")
    ap.add_argument("--slow-s", type=float, default=5.0, help="a query slower than this (cold) is timed once warm, not 3 times")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", type=Path, default=None, help="parent for the temp chDB path (default: system temp)")
    ap.add_argument("--keep-data", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    with open(ROOT / "pricing.toml", "rb") as fh:
        pricing = Pricing.from_mapping(tomllib.load(fh))
    sizes = [int(s) for s in args.sizes.split(",") if s]
    windows = [int(s) for s in args.fid_windows.split(",") if s]
    variant_windows = [int(s) for s in args.variant_windows.split(",") if s]
    dims = sorted({args.dim, 512})
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `finally` removes the temp store
    tmp = Path(tempfile.mkdtemp(prefix="sentinel-bench-ch-", dir=args.data_dir))
    t_start = time.perf_counter()
    b = Bench(tmp / "chdb")
    try:
        synth = Synth(pricing, args.dim, args.seed)
        mach = machine(b)
        log("part 1: insert speed")
        inserts = part_inserts(b, synth, dims, args.rounds, {500: 40, 10_000: 10})

        log("part 2: report")
        report_sizes = []
        for n in sizes:
            log(f"  loading {n:,} jobs")
            ld = load(b, synth, n, args.load_batch)
            log(f"  loaded in {ld['load_wall_s']:.1f}s ({ld['jobs_rows_per_s']:,.0f} jobs rows/s, "
                f"{ld['scores_rows_per_s']:,.0f} scores rows/s); merges waited {ld['merge_wait']['waited_s']:.1f}s")
            rp = report_times(b, pricing)
            log(f"  report: cold {rp['cold_s']:.3f}s warm {rp['warm_s']:.3f}s")
            report_sizes.append({"load": ld, "report": rp})
        last = report_sizes[-1]["load"]
        log(f"part 3: windowed FID on the {last['jobs']:,}-job store")
        fid_res = [part_fid(b, synth, last["jobs"], sorted(windows), variant_windows, args.slow_s, args.variant_rounds)]

        big = {"size": args.big, "loaded": False}
        if args.big and args.big > last["jobs"]:
            factor = args.big / last["jobs"]
            est_load = last["load_wall_s"] * factor
            est_disk = sum(v["bytes"] for v in last["parts"].values()) * factor
            free = shutil.disk_usage(tmp).free
            big.update(estimated_load_s=est_load, estimated_disk_bytes=est_disk, free_disk_bytes=free)
            if est_load > args.big_max_load_s:
                big["decision"] = (f"skipped: estimated load {est_load:.0f} s (linear from the {last['jobs']:,}-job load) "
                                   f"> {args.big_max_load_s:.0f} s")
            elif est_disk * 2 > free:
                big["decision"] = f"skipped: estimated {est_disk / 1e9:.1f} GB (x2 for merges) > {free / 1e9:.1f} GB free"
            else:
                log(f"part 2b: loading {args.big:,} jobs (estimated {est_load:.0f}s)")
                ld = load(b, synth, args.big, args.load_batch)
                log(f"  loaded in {ld['load_wall_s']:.1f}s; merges waited {ld['merge_wait']['waited_s']:.1f}s "
                    f"(quiet: {ld['merge_wait']['quiet']})")
                rp = report_times(b, pricing)
                log(f"  report: cold {rp['cold_s']:.3f}s warm {rp['warm_s']:.3f}s; merges running {rp['merges_running_at_each_run']}")
                report_sizes.append({"load": ld, "report": rp})
                big["loaded"] = True
                big["load_s"] = ld["load_wall_s"]
                big["decision"] = (f"loaded: estimated {est_load:.0f} s (linear from the {last['jobs']:,}-job load), "
                                   f"took {ld['load_wall_s']:.0f} s")
                big_windows = sorted(int(x) for x in args.big_fid_windows.split(",") if x)
                log(f"part 3b: windowed FID on the {args.big:,}-job store")
                fid_res.append(part_fid(b, synth, args.big, big_windows, [], args.slow_s))
        elif args.big:
            big["decision"] = "not above the largest --sizes"
        else:
            big["decision"] = "disabled (--big 0)"
        log(f"  {args.big:,} jobs: {big.get('decision')}")

        doc = {
            "benchmark": "bench/clickhouse.py",
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "machine": mach,
            "method": {
                "store": "embedded chDB through warehouse.client.ClickHouseWarehouse (clickhouse-connect), "
                         "fresh temp path, schema from sql/migrations via migrate()",
                "inserts": "ClickHouseWarehouse.insert (insert_arrow); each config on a TRUNCATEd table with fresh rows; "
                           "batches built before timing; rows/s = rows / wall time of all inserts of the round; "
                           "median over rounds (interleaved order)",
                "report": "reports.report.benchmark(warehouse, Pricing(pricing.toml), Window(2026-01-01, 2026-04-01)): "
                          "gpu_types + benchmark queries; cold = first run after load + merge wait, chDB caches dropped; "
                          "warm = median of the next 3",
                "fid": "windows are the latest N images of the busiest (model, niche), start floored to the hour; "
                       "raw = MOMENTS_SQL via the read-only session; buckets = per-hour states merged by sumForEach in SQL "
                       "or FeatureMoments.merge in Python; fid() = sentinel.fid.fid against a numpy reference",
            },
            "sql": {"moments": MOMENTS_SQL, "fetch": FETCH_SQL, "scan_only": SCAN_SQL, "buckets_ddl": BUCKETS_DDL,
                    "buckets_build": BUCKETS_BUILD_SQL, "buckets_merge": BUCKETS_MERGE_SQL,
                    "variants": {k: v["sql"] for k, v in MOMENTS_VARIANTS.items()}},
            "inserts": inserts,
            "report": {"sizes": report_sizes, "big": big},
            "fid": fid_res,
        }
    finally:
        b.close()
        if not args.keep_data:
            shutil.rmtree(tmp, ignore_errors=True)
    doc["elapsed_s"] = time.perf_counter() - t_start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    text = tables_md(doc)
    print(text)
    args.out.with_suffix(".md").write_text(text.rstrip() + "\n")
    print(f"Results: {args.out} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
