"""Choose a t-digest library for live latency sketches, by measurement.

Candidates: ``fastdigest`` (Rust, PyO3) and ``tdigest`` (pure Python, CamDavidsonPilon).

For each distribution (latency-like values in ms, fixed seed) and each configuration this
measures:

* update cost in ns/value: one value at a time (``update``) and in batches
  (``batch_update``; for fastdigest also ``batch_update(ndarray)`` and ``from_values``);
* p50/p95/p99 relative error vs the exact ``numpy.percentile`` (linear interpolation), for a
  single digest fed one value at a time, and for a digest merged from 16 shard digests
  (values assigned to shards at random, each shard fed with ``batch_update``, as partitions /
  workers would);
* merge time (16 shards -> 1), number of centroids, serialized size (compact JSON of the
  library's dict form; fastdigest also its ``to_bytes``), and whether a serialize -> JSON ->
  restore round trip is exact (digest equal and quantiles bit-identical), plus whether merging
  is deterministic (same inputs -> same result twice).

Configurations: fastdigest ``max_centroids`` 1000 (its default), 500, 200 (what
``sentinel/latency.py`` uses) and 100 (the nominal "compression 100" that tdigest's default
``delta=0.01`` corresponds to); tdigest at its defaults ``delta=0.01, K=25`` (compression
1/delta = 100, compresses when it holds more than K/delta = 2500 centroids, so it keeps
several hundred to ~2500 centroids -- memory-wise comparable to fastdigest's 1000).

Seed sweep: one seed is one sample of the estimation error, so for fastdigest (cheap) the
accuracy part is repeated over ``--sweep-seeds`` seeds on the mixture distribution (single digest
fed one value at a time, and 16-shard merge) and the median / max relative error is reported.
tdigest is too slow for a sweep (~35 s per 1M values).

Timing: the fast fastdigest timings are repeated (half of the rounds before the slow tdigest
phase, half after, to spread machine noise) and the median is reported; tdigest is timed once
over the whole ingest (it is ~100x slower), with per-chunk medians recorded in the JSON.
``--tdigest-n`` caps the number of values tdigest ingests (default: all of ``--n``); when it is
lower, tdigest's errors are against the exact percentiles of the values it saw.

Usage::

    python bench/digest.py [--n 1000000] [--seed 0] [--rounds 6] [--tdigest-n N] [--sweep-seeds 5]

Prints Markdown tables and writes ``bench/results/digest.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import operator
import os
import platform
import random
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np

import fastdigest
from fastdigest import TDigest as FTDigest
from fastdigest import merge_all as f_merge_all

import tdigest as tdigest_mod
from tdigest import TDigest as PTDigest
from _machine import cores_available, cpu_model as _cpu_model

QS = (50.0, 95.0, 99.0)
GRID = [i / 100 for i in range(101)]  # quantiles compared in round-trip exactness checks
SHARDS = 16
FAST_CONFIGS = (1000, 500, 200, 100)
RESULTS = Path(__file__).resolve().parent / "results" / "digest.json"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- data


def lognormal_params(mean: float, sigma: float) -> tuple[float, float]:
    """mu, sigma of a lognormal with the given arithmetic mean."""
    return math.log(mean) - sigma * sigma / 2, sigma


def gen(dist: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dist == "mixture":
        # 95% warm requests: lognormal, mean 1.5 s; 5% cold starts: lognormal, mean 8 s.
        warm = rng.lognormal(*lognormal_params(1500.0, 0.5), size=n)
        cold = rng.lognormal(*lognormal_params(8000.0, 0.6), size=n)
        x = np.where(rng.random(n) < 0.05, cold, warm)
    elif dist == "uniform":
        x = rng.uniform(20.0, 3000.0, size=n)
    else:
        raise ValueError(dist)
    return x.astype(np.float64)


def rel_err(est: float, exact: float) -> float:
    return abs(est - exact) / abs(exact)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def med(xs: list[float]) -> float:
    return statistics.median(xs)


# --------------------------------------------------------------------------- adapters


def f_quantiles(d: FTDigest) -> list[float]:
    return [d.quantile(q / 100) for q in QS]


def p_quantiles(d: PTDigest) -> list[float]:
    return [d.percentile(q) for q in QS]


def f_update_all(mc: int, xs: list[float]) -> FTDigest:
    d = FTDigest(max_centroids=mc)
    upd = d.update
    for v in xs:
        upd(v)
    return d


def p_update_all(xs: list[float], chunk: int, chunk_times: list[float]) -> PTDigest:
    d = PTDigest()
    upd = d.update
    for start in range(0, len(xs), chunk):
        t0 = time.perf_counter()
        for v in xs[start : start + chunk]:
            upd(v)
        chunk_times.append((time.perf_counter() - t0) / len(xs[start : start + chunk]) * 1e9)
    return d


def f_roundtrip(d: FTDigest) -> dict[str, Any]:
    t_ser, s = timed(lambda: json.dumps(d.to_dict(), separators=(",", ":"), allow_nan=False))
    t_de, r = timed(lambda: FTDigest.from_dict(json.loads(s)))
    b = d.to_bytes()
    rb = FTDigest.from_bytes(b)
    same_q = [r.quantile(q) for q in GRID] == [d.quantile(q) for q in GRID]
    same_qb = [rb.quantile(q) for q in GRID] == [d.quantile(q) for q in GRID]
    return {
        "json_bytes": len(s),
        "binary_bytes": len(b),
        "serialize_ms": t_ser * 1e3,
        "restore_ms": t_de * 1e3,
        "json_roundtrip_equal": bool(r == d),
        "json_roundtrip_quantiles_identical": same_q,
        "json_roundtrip_n_preserved": r.n_values == d.n_values,
        "binary_roundtrip_equal": bool(rb == d),
        "binary_roundtrip_quantiles_identical": same_qb,
        "exact": bool(r == d) and same_q and bool(rb == d) and same_qb,
    }


def p_roundtrip(d: PTDigest) -> dict[str, Any]:
    t_ser, s = timed(lambda: json.dumps(d.to_dict(), separators=(",", ":"), allow_nan=False))
    t_de, r = timed(lambda: PTDigest().update_from_dict(json.loads(s)))
    same_c = r.centroids_to_list() == d.centroids_to_list()
    same_q = [r.percentile(q * 100) for q in GRID] == [d.percentile(q * 100) for q in GRID]
    return {
        "json_bytes": len(s),
        "binary_bytes": None,
        "serialize_ms": t_ser * 1e3,
        "restore_ms": t_de * 1e3,
        "json_roundtrip_centroids_equal": same_c,
        "json_roundtrip_quantiles_identical": same_q,
        "json_roundtrip_n_preserved": r.n == d.n,
        "restored_centroids": len(r),
        "original_centroids": len(d),
        "exact": same_c and same_q,
    }


# --------------------------------------------------------------------------- benchmark


def bench_fast_timing(mc: int, x: np.ndarray, xs: list[float], acc: dict[str, list[float]]) -> FTDigest:
    n = len(xs)
    t, d = timed(lambda: f_update_all(mc, xs))
    acc["update_ns"].append(t / n * 1e9)

    def batch_list() -> FTDigest:
        b = FTDigest(max_centroids=mc)
        b.batch_update(xs)
        return b

    def batch_arr() -> FTDigest:
        b = FTDigest(max_centroids=mc)
        b.batch_update(x)
        return b

    t, _ = timed(batch_list)
    acc["batch_list_ns"].append(t / n * 1e9)
    t, _ = timed(batch_arr)
    acc["batch_ndarray_ns"].append(t / n * 1e9)
    t, _ = timed(lambda: FTDigest.from_values(x, max_centroids=mc))
    acc["from_values_ns"].append(t / n * 1e9)
    return d


def run_dist(dist: str, args: argparse.Namespace) -> dict[str, Any]:
    n = args.n
    x = gen(dist, n, args.seed)
    xs = x.tolist()
    exact = [float(v) for v in np.percentile(x, QS)]  # method="linear"
    shard_of = np.random.default_rng(args.seed + 1).integers(0, SHARDS, size=n)
    shards_x = [x[shard_of == i] for i in range(SHARDS)]
    shards_l = [s.tolist() for s in shards_x]
    out: dict[str, Any] = {"n": n, "exact_ms": dict(zip(["p50", "p95", "p99"], exact)), "configs": {}}

    # Python loop baselines, for scale (the floor of any per-value Python call).
    base_pass = []
    base_call = []
    for _ in range(3):
        t, _ = timed(lambda: [None for _v in xs])
        base_pass.append(t / n * 1e9)
        sink = []
        app = sink.append

        def loop_call() -> None:
            for v in xs:
                app(v)

        t, _ = timed(loop_call)
        base_call.append(t / n * 1e9)
    out["python_loop_baseline_ns"] = {"loop": med(base_pass), "loop_plus_c_method_call": med(base_call)}

    # ---- fastdigest: first half of timing rounds
    f_acc = {mc: {k: [] for k in ("update_ns", "batch_list_ns", "batch_ndarray_ns", "from_values_ns")} for mc in FAST_CONFIGS}
    first = (args.rounds + 1) // 2
    f_single: dict[int, FTDigest] = {}
    for _ in range(first):
        for mc in FAST_CONFIGS:
            f_single[mc] = bench_fast_timing(mc, x, xs, f_acc[mc])

    # ---- tdigest (slow, timed once)
    random.seed(args.seed)  # tdigest's merge/compress/tie-breaking use the global `random`
    tn = min(n, args.tdigest_n or n)
    txs = xs[:tn]
    t_exact = [float(v) for v in np.percentile(x[:tn], QS)] if tn < n else exact
    log(f"[{dist}] tdigest: {tn} single updates ...")
    chunk_ns: list[float] = []
    t_upd, pd_single = timed(lambda: p_update_all(txs, max(1, tn // 10), chunk_ns))
    t_shard_of = shard_of[:tn]
    t_shards_l = [x[:tn][t_shard_of == i].tolist() for i in range(SHARDS)]
    log(f"[{dist}] tdigest: {SHARDS} shards via batch_update ...")
    p_shards = []
    t_batch = 0.0
    for sl in t_shards_l:
        d = PTDigest()
        t, _ = timed(lambda: d.batch_update(sl))
        t_batch += t
        p_shards.append(d)
    log(f"[{dist}] tdigest: merges ...")
    p_merge_t = []
    p_merged_runs = []
    for _ in range(3):
        t, m = timed(lambda: functools.reduce(operator.add, p_shards))
        p_merge_t.append(t)
        p_merged_runs.append(m)
    p_merged = p_merged_runs[0]
    p_det = all(m.centroids_to_list() == p_merged.centroids_to_list() for m in p_merged_runs[1:])
    q_t = []
    for _ in range(20):
        t, _ = timed(lambda: p_quantiles(pd_single))
        q_t.append(t)
    est_s = p_quantiles(pd_single)
    est_m = p_quantiles(p_merged)
    out["configs"]["tdigest delta=0.01 K=25 (default)"] = {
        "library": "tdigest",
        "params": {"delta": pd_single.delta, "K": pd_single.K},
        "values_ingested": tn,
        "exact_ms_for_ingested": dict(zip(["p50", "p95", "p99"], t_exact)),
        "update_ns": t_upd / tn * 1e9,
        "update_ns_per_chunk": chunk_ns,
        "batch_update_ns": t_batch / tn * 1e9,
        "batch_note": "batch_update is a Python loop over update() plus one compress()",
        "query_3q_us": med(q_t) * 1e6,
        "centroids_single": len(pd_single),
        "centroids_merged": len(p_merged),
        "single_est_ms": est_s,
        "single_rel_err": [rel_err(e, v) for e, v in zip(est_s, t_exact)],
        "merged_est_ms": est_m,
        "merged_rel_err": [rel_err(e, v) for e, v in zip(est_m, t_exact)],
        "merge_16_ms": med(p_merge_t) * 1e3,
        "merge_method": "functools.reduce(operator.add, shards)",
        "merge_deterministic": p_det,
        "roundtrip_single": p_roundtrip(pd_single),
        "roundtrip_merged": p_roundtrip(p_merged),
    }

    # ---- fastdigest: second half of timing rounds, then accuracy / merge / serialization
    for _ in range(args.rounds - first):
        for mc in FAST_CONFIGS:
            f_single[mc] = bench_fast_timing(mc, x, xs, f_acc[mc])
    for mc in FAST_CONFIGS:
        d = f_single[mc]
        shards = []
        for sl in shards_l:
            s = FTDigest(max_centroids=mc)
            s.batch_update(sl)
            shards.append(s)
        m_all_t, m_inpl_t, merged_runs = [], [], []
        for _ in range(args.rounds):
            t, m = timed(lambda: f_merge_all(shards))
            m_all_t.append(t)
            merged_runs.append(m)

            def inplace() -> FTDigest:
                acc_d = shards[0].copy()
                for s2 in shards[1:]:
                    acc_d.merge_inplace(s2)
                return acc_d

            t, m2 = timed(inplace)
            m_inpl_t.append(t)
        merged = merged_runs[0]
        det = all(m == merged for m in merged_runs[1:])
        q_t = []
        for _ in range(20):
            t, _ = timed(lambda: f_quantiles(d))
            q_t.append(t)
        est_s = f_quantiles(d)
        est_m = f_quantiles(merged)
        est_m2 = f_quantiles(m2)
        a = f_acc[mc]
        out["configs"][f"fastdigest max_centroids={mc}" + (" (default)" if mc == 1000 else "")] = {
            "library": "fastdigest",
            "params": {"max_centroids": mc},
            "values_ingested": n,
            "update_ns": med(a["update_ns"]),
            "update_ns_rounds": a["update_ns"],
            "batch_update_ns": med(a["batch_list_ns"]),
            "batch_update_ndarray_ns": med(a["batch_ndarray_ns"]),
            "from_values_ndarray_ns": med(a["from_values_ns"]),
            "batch_rounds": {k: v for k, v in a.items() if k != "update_ns"},
            "query_3q_us": med(q_t) * 1e6,
            "centroids_single": d.n_centroids,
            "centroids_merged": merged.n_centroids,
            "single_est_ms": est_s,
            "single_rel_err": [rel_err(e, v) for e, v in zip(est_s, exact)],
            "merged_est_ms": est_m,
            "merged_rel_err": [rel_err(e, v) for e, v in zip(est_m, exact)],
            "merged_inplace_chain_rel_err": [rel_err(e, v) for e, v in zip(est_m2, exact)],
            "merge_all_equals_inplace_chain": bool(m2 == merged),
            "merge_16_ms": med(m_all_t) * 1e3,
            "merge_inplace_chain_16_ms": med(m_inpl_t) * 1e3,
            "merge_method": "fastdigest.merge_all(shards)",
            "merge_deterministic": det,
            "roundtrip_single": f_roundtrip(d),
            "roundtrip_merged": f_roundtrip(merged),
        }
    return out


def seed_sweep(args: argparse.Namespace) -> dict[str, Any]:
    """fastdigest accuracy over several seeds (mixture distribution)."""
    errs: dict[int, dict[str, list[list[float]]]] = {mc: {"single": [], "merged": []} for mc in FAST_CONFIGS}
    seeds = [args.seed + 100 + i for i in range(args.sweep_seeds)]
    for seed in seeds:
        x = gen("mixture", args.n, seed)
        xs = x.tolist()
        exact = np.percentile(x, QS)
        shard_of = np.random.default_rng(seed + 1).integers(0, SHARDS, size=args.n)
        shards_l = [x[shard_of == i].tolist() for i in range(SHARDS)]
        for mc in FAST_CONFIGS:
            d = f_update_all(mc, xs)
            errs[mc]["single"].append([rel_err(e, v) for e, v in zip(f_quantiles(d), exact)])
            shards = []
            for sl in shards_l:
                s = FTDigest(max_centroids=mc)
                s.batch_update(sl)
                shards.append(s)
            m = f_merge_all(shards)
            errs[mc]["merged"].append([rel_err(e, v) for e, v in zip(f_quantiles(m), exact)])
    out: dict[str, Any] = {"dist": "mixture", "seeds": seeds, "configs": {}}
    for mc in FAST_CONFIGS:
        c = {}
        for kind in ("single", "merged"):
            a = np.array(errs[mc][kind])
            c[kind] = {"median_rel_err": np.median(a, axis=0).tolist(), "max_rel_err": a.max(axis=0).tolist(), "all": a.tolist()}
        out["configs"][f"fastdigest max_centroids={mc}"] = c
    return out


# --------------------------------------------------------------------------- report


def sweep_table(sw: dict[str, Any]) -> str:
    lines = [
        f"### fastdigest seed sweep: mixture, {len(sw['seeds'])} seeds ({sw['seeds'][0]}..{sw['seeds'][-1]})",
        "",
        "| config | single err % p50/p95/p99: median | max | 16-shard merged err %: median | max |",
        "|---|---|---|---|---|",
    ]
    for name, c in sw["configs"].items():
        f = lambda v: " / ".join(pct(e) for e in v)  # noqa: E731
        lines.append(
            f"| {name} | {f(c['single']['median_rel_err'])} | {f(c['single']['max_rel_err'])} "
            f"| {f(c['merged']['median_rel_err'])} | {f(c['merged']['max_rel_err'])} |"
        )
    return "\n".join(lines)



def pct(v: float) -> str:
    return f"{v * 100:.3f}"


def table(dist: str, res: dict[str, Any]) -> str:
    ex = res["exact_ms"]
    lines = [
        f"### {dist} (n={res['n']:,}; exact p50/p95/p99 = {ex['p50']:.1f} / {ex['p95']:.1f} / {ex['p99']:.1f} ms)",
        "",
        "| config | values | update ns/val | batch ns/val | centroids | single err % p50/p95/p99 "
        "| 16-shard merged err % p50/p95/p99 | merge 16 ms | JSON B | binary B | JSON round trip: quantiles identical / digest equal | binary round trip | merge deterministic |",
        "|---|---:|---:|---:|---:|---|---|---:|---:|---:|---|---|---|",
    ]
    for name, c in res["configs"].items():
        batch = f"{c['batch_update_ns']:.0f}"
        if c["library"] == "fastdigest":
            batch += f" (ndarray {c['batch_update_ndarray_ns']:.0f})"
        rts = (c["roundtrip_single"], c["roundtrip_merged"])
        yn = lambda ok: "yes" if ok else "NO"  # noqa: E731
        q_ok = all(r["json_roundtrip_quantiles_identical"] for r in rts)
        eq_key = "json_roundtrip_equal" if c["library"] == "fastdigest" else "json_roundtrip_centroids_equal"
        eq = "single " + yn(rts[0][eq_key] and rts[0]["json_roundtrip_n_preserved"])
        eq += ", merged " + yn(rts[1][eq_key] and rts[1]["json_roundtrip_n_preserved"])
        if c["library"] == "fastdigest":
            b_ok = all(r["binary_roundtrip_equal"] and r["binary_roundtrip_quantiles_identical"] for r in rts)
            bin_rt = "exact" if b_ok else "NOT exact"
        else:
            bin_rt = "n/a (dict only)"
        binb = c["roundtrip_merged"]["binary_bytes"]
        lines.append(
            f"| {name} | {c['values_ingested']:,} | {c['update_ns']:.0f} | {batch} "
            f"| {c['centroids_single']} / {c['centroids_merged']} "
            f"| {' / '.join(pct(e) for e in c['single_rel_err'])} "
            f"| {' / '.join(pct(e) for e in c['merged_rel_err'])} "
            f"| {c['merge_16_ms']:.2f} | {c['roundtrip_merged']['json_bytes']:,} "
            f"| {'-' if binb is None else f'{binb:,}'} | {yn(q_ok)} / {eq} | {bin_rt} "
            f"| {yn(c['merge_deterministic'])} |"
        )
    b = res["python_loop_baseline_ns"]
    lines += [
        "",
        f"Python loop baseline: {b['loop']:.0f} ns/val bare, {b['loop_plus_c_method_call']:.0f} ns/val with a C method call "
        "(the floor for any one-at-a-time update from Python). Centroids: single / merged. Sizes: merged digest.",
    ]
    return "\n".join(lines)


def report_md(doc: dict[str, Any], n: int, seed: int, tdigest_n: int | None) -> str:
    """The printed tables (also written next to the JSON as .md)."""
    m = doc["machine"]
    parts = [f"## t-digest benchmark (n={n:,}, seed={seed}, {SHARDS} shards)\n",
             f"Machine: {m['processor'] or m['cpu_model'] or m['machine']}, {m['cores_available']}/{m['cpu_count']} cores, "
             f"Python {m['python']}; fastdigest {doc['versions']['fastdigest']}, tdigest {doc['versions']['tdigest']}. "
             f"Defaults: fastdigest max_centroids={doc['defaults']['fastdigest']['max_centroids']}; "
             f"tdigest delta={doc['defaults']['tdigest']['delta']} (compression 1/delta=100), K={doc['defaults']['tdigest']['K']} "
             "(compress above K/delta=2500 centroids).\n"]
    if tdigest_n and tdigest_n < n:
        parts.append(f"NOTE: tdigest ingested only the first {tdigest_n:,} values (too slow for {n:,}); its errors are vs "
                     "the exact percentiles of those values.\n")
    for dist, res in doc["results"].items():
        parts.append(table(dist, res) + "\n")
    if doc.get("fastdigest_seed_sweep") is not None:
        parts.append(sweep_table(doc["fastdigest_seed_sweep"]) + "\n")
    return "\n".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=6, help="timing rounds for fastdigest (median reported)")
    ap.add_argument("--tdigest-n", type=int, default=0, help="cap values fed to tdigest (0 = all of --n)")
    ap.add_argument("--dists", default="mixture,uniform")
    ap.add_argument("--sweep-seeds", type=int, default=5, help="fastdigest accuracy seed sweep (0 = skip)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    t_start = time.perf_counter()
    results = {}
    for dist in args.dists.split(","):
        log(f"[{dist}] generating {args.n} values, seed {args.seed}")
        results[dist] = run_dist(dist, args)
    sweep = None
    if args.sweep_seeds > 0:
        log(f"fastdigest seed sweep: {args.sweep_seeds} seeds")
        sweep = seed_sweep(args)
    elapsed = time.perf_counter() - t_start

    cores_avail = cores_available()
    cpu_model = _cpu_model() or None
    doc = {
        "benchmark": "bench/digest.py",
        "args": {
            "n": args.n,
            "seed": args.seed,
            "rounds": args.rounds,
            "tdigest_n": args.tdigest_n or args.n,
            "shards": SHARDS,
            "sweep_seeds": args.sweep_seeds,
        },
        "machine": {
            "processor": platform.processor(),
            "cpu_model": cpu_model,
            "machine": platform.machine(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "cores_available": cores_avail,
            "python": sys.version.split()[0],
            "python_impl": platform.python_implementation(),
        },
        "versions": {
            "fastdigest": getattr(fastdigest, "__version__", None) or metadata.version("fastdigest"),
            "tdigest": metadata.version("tdigest"),
            "accumulation-tree": metadata.version("accumulation-tree"),
            "numpy": np.__version__,
        },
        "defaults": {
            "fastdigest": {"max_centroids": FTDigest().max_centroids},
            "tdigest": {"delta": PTDigest().delta, "K": PTDigest().K},
        },
        "method": {
            "exact": "numpy.percentile(x, [50, 95, 99]) (linear interpolation)",
            "rel_err": "|estimate - exact| / exact",
            "single": "one digest fed with update() one value at a time (random order)",
            "merged": f"values assigned to {SHARDS} shards at random; each shard fed with batch_update(list); shards merged",
            "roundtrip": "json.dumps(to_dict(), allow_nan=False) -> json.loads -> restore; exact = equal digest and identical quantiles on a 101-point grid",
            "timing": "fastdigest: median of --rounds rounds (half before, half after the tdigest phase); tdigest: one pass",
        },
        "elapsed_s": elapsed,
        "results": results,
        "fastdigest_seed_sweep": sweep,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")

    text = report_md(doc, args.n, args.seed, args.tdigest_n)
    print(text)
    args.out.with_suffix(".md").write_text(text)
    print(f"Total run time {elapsed:.0f} s. Results: {args.out}")


if __name__ == "__main__":
    main()
