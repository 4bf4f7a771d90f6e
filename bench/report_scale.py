"""The quarterly report at 100k / 1M / 10M jobs: old layout (event log read FINAL) vs new
(report rollups of sql/migrations/0012), in the same run, on this machine's embedded chDB.

Each (layout, size) is one child process (chDB allows one data path per process) that puts a
source tree first on ``sys.path`` and runs that tree's own code: its migrations, its
``bench/clickhouse.py`` loader (synthetic quarter 2026Q1 shaped like ``inference.trace``) and
its report. ``--old-tree`` is a git worktree of the commit before the rollups (69652f8); the new
tree is this one. Both load the same rows (same seed), plus what this script adds to them:
guard mode for the first model (every job has a verdict; every 25th failed it: a discarded
attempt, delivered false, of a request that failed) and, where the tree's scores table has it,
the job's requested_at on each score (the worker writes it since 0012).

Timed after the load and a bounded wait for background merges:

* **report query**: what ``reports.report.benchmark()`` runs for the benchmark table (gpu_types
  + benchmark.sql; new tree: ``reports.rollups.benchmark_table``, which picks the rollups).
  Cold = first run after dropping chDB caches; warm = median of 3 (1 when cold took --slow-s).
* **benchmark() without intervals** (``BootstrapConfig(resamples=0)``): every query of the
  report (quality, latency CDF, cost and latency breakdowns, guard, trend); one warm-up, median
  of 2 (1 when the warm-up took --slow-s).
* **Grafana panels**: every panel query of the tree's dashboard, macros expanded for the
  quarter with a 1-hour interval; one warm-up, median of 3 (1 when slow).
* **benchmark() with the default bootstrap** (1000 resamples, <= 5,000 jobs per group): once.
  Its numpy part does not depend on the store's size.

The new tree's report rows are checked against the old tree's (same data): integers equal,
latency quantiles equal, CLIP and cost within 1e-11 relative.

Usage::

    python bench/report_scale.py --old-tree /work/wt-old-69652f8 [--sizes 100000,1000000,10000000]

Writes ``bench/results/report_scale.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
NEW_TREE = HERE.parents[1]
RESULTS = HERE.parent / "results" / "report_scale.json"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- child (one tree, one store)


def _patch_synth(chb: Any) -> None:
    """Make the tree's loader produce every column of the tree's schemas (guard attempts, and
    requested_at on scores where the tree has it)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    from warehouse.rows import JOBS_SCHEMA, SCORES_SCHEMA

    base = chb.Synth.batch
    made = ["job_id", "model_id", "model_version", "provider", "niche", "prompt", "seed", "has_reference",
            "media_type", "requested_at", "started_at", "completed_at", "delivered_at", "latency_ms", "cold_start",
            "cold_start_ms", "inference_ms", "encode_ms", "gpu_type", "gpu_seconds", "api_cost_usd", "node_id",
            "image_bytes", "source_partition", "source_offset"]
    chb.JOBS_SCHEMA = pa.schema([JOBS_SCHEMA.field(n) for n in made])
    chb.SCORES_SCHEMA = pa.schema([f for f in SCORES_SCHEMA if f.name != "requested_at"])
    first = chb.TRACE_MODELS[0].model

    def batch(self: Any, requested_ms: Any, offset: int, dim: int | None = None, scored_frac: float = 0.97) -> Any:
        jobs, scores = base(self, requested_ms, offset, dim, scored_frac)
        n = jobs.num_rows
        ids = jobs.column("job_id")
        guarded = np.asarray(jobs.column("model_id").to_pylist()) == first
        discarded = guarded & ((offset + np.arange(n)) % 25 == 0)  # a failed request: its one attempt discarded
        extra = {"content_hash": pa.array([""] * n), "image_sha256": pa.array([""] * n),
                 "image_uri": pa.array([""] * n), "reference_uri": pa.array([""] * n), "request_id": ids,
                 "attempt": pa.array(np.ones(n, np.uint16)), "delivered": pa.array(~discarded),
                 "guard_passed": pa.array(np.where(guarded, ~discarded, None).tolist(), pa.bool_()),
                 "guard_score": pa.nulls(n, pa.float64()),
                 "guard_failed_checks": pa.array([["blank"] if d else [] for d in discarded], pa.list_(pa.string())),
                 "guard_rubric_version": pa.array(np.where(guarded, "r1", "").tolist()),
                 "guard_scorer_version": pa.array(np.where(guarded, "tiny-clip-v1", "").tolist()),
                 "guard_ms": pa.array(np.full(n, 12.0), mask=~guarded),
                 "guard_error": pa.nulls(n, pa.string())}
        cols = {f.name: jobs.column(f.name) if f.name in made else extra[f.name] for f in JOBS_SCHEMA}
        full = pa.table(cols, schema=JOBS_SCHEMA)
        if "requested_at" in SCORES_SCHEMA.names:
            at = jobs.column("requested_at").take(pc.index_in(scores.column("job_id"), value_set=ids))
            scores = scores.append_column("requested_at", at.cast(SCORES_SCHEMA.field("requested_at").type))
        return full, scores.select(SCORES_SCHEMA.names).cast(SCORES_SCHEMA)

    chb.Synth.batch = batch


def grafana_sql(sql: str, start: str, end: str) -> str:
    """A panel query with the Grafana ClickHouse macros expanded as the plugin does for the
    quarter's range and a 1-hour interval (as tests/sql/test_rollups.py does for all time)."""
    import re

    sql = re.sub(r"\$__timeInterval\(([^)]+)\)", r"toStartOfInterval(\1, INTERVAL 1 HOUR)", sql)
    return re.sub(r"\$__timeFilter\(([^)]+)\)", rf"\1 >= toDateTime('{start}') AND \1 <= toDateTime('{end}')", sql)


def grafana_times(b: Any, tree: Path, pricing: Any, start: str, end: str, slow_s: float) -> list[dict[str, Any]]:
    """Each panel query of the tree's dashboard: one warm-up, then the median of 3 (1 when the
    warm-up took ``slow_s`` or more)."""
    from warehouse.pricing import publish_pricing

    publish_pricing(b.w, pricing)
    panels = json.loads((tree / "deploy/grafana/dashboards/sentinel.json").read_text())["panels"]
    out = []
    for panel in panels:
        for target in panel["targets"]:
            text = grafana_sql(target["rawSql"], start, end)
            first, _, _ = _median_run(lambda: b.w.query(text), 1)
            warm, runs, _ = _median_run(lambda: b.w.query(text), 3 if first < slow_s / 4 else 1)
            out.append({"panel": panel["title"], "warm_s": warm, "runs_s": runs, "sql": target["rawSql"]})
    return out


def _median_run(fn: Any, runs: int) -> tuple[float, list[float], Any]:
    times, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(statistics.median(times)), times, out


def child(tree: Path, store: Path, jobs: int, seed: int, load_batch: int, slow_s: float) -> dict[str, Any]:
    sys.path[:0] = [str(tree), str(tree / "bench")]
    import tomllib

    import clickhouse as chb  # the tree's own loader
    import sql as sql_files
    from reports.report import benchmark, pricing_params
    from sentinel.bootstrap import BootstrapConfig
    from sentinel.cost import Pricing
    from warehouse.window import Window

    try:
        from reports.rollups import benchmark_table, hours_params, rollups_answer  # new tree
    except ImportError:
        benchmark_table = None
    _patch_synth(chb)
    pricing = Pricing.from_mapping(tomllib.loads((tree / "pricing.toml").read_text()))
    b = chb.Bench(store)
    try:
        ld = chb.load(b, chb.Synth(pricing, 64, seed), jobs, load_batch)
        window = Window(chb.QUARTER_START, chb.QUARTER_END)
        params = {**window.params(), **pricing_params(pricing), "scorer_version": ""}

        def report_query() -> list[dict[str, Any]]:
            b.w.query(sql_files.report("gpu_types"), window.params())
            table = (benchmark_table(b.w, window, params) if benchmark_table
                     else b.w.query(sql_files.report("benchmark"), params))
            return table.to_pylist()

        b.drop_caches()
        cold, _, rows = _median_run(report_query, 1)
        warm, warm_runs, rows = _median_run(report_query, 3 if cold < slow_s else 1)
        log(f"    report query: cold {cold:.3f}s warm {warm:.3f}s")
        no_ci = lambda: benchmark(b.w, pricing, window, bootstrap=BootstrapConfig(resamples=0))  # noqa: E731
        first, _, _ = _median_run(no_ci, 1)
        full_noci, noci_runs, _ = _median_run(no_ci, 2 if first < slow_s else 1)
        log(f"    benchmark() without intervals: {full_noci:.3f}s")
        full_ci, _, _ = _median_run(lambda: benchmark(b.w, pricing, window), 1)
        log(f"    benchmark() with bootstrap intervals: {full_ci:.3f}s")
        panels = grafana_times(b, tree, pricing, "2026-01-01 00:00:00", "2026-04-01 00:00:00", slow_s)
        log(f"    Grafana panels: {sum(p['warm_s'] for p in panels):.3f}s in all")
        parts = b.parts()
        path = "event log" if not benchmark_table else \
            "rollups" if rollups_answer(b.w, {**params, **hours_params(window)}) else "event log (rollups declined)"
        return {"jobs": jobs, "scores": ld["scores"], "load_wall_s": ld["load_wall_s"],
                "jobs_rows_per_s": ld["jobs_rows_per_s"], "merge_wait_s": ld["merge_wait"]["waited_s"],
                "disk_bytes": sum(p["bytes"] for p in parts.values()), "parts": parts,
                "report_query_cold_s": cold, "report_query_warm_s": warm, "report_query_warm_runs_s": warm_runs,
                "benchmark_no_intervals_s": full_noci, "benchmark_no_intervals_runs_s": noci_runs,
                "benchmark_with_intervals_s": full_ci, "grafana": panels, "rows": rows, "loadavg_1m": os.getloadavg()[0],
                "path": path}
    finally:
        b.close()


# --------------------------------------------------------------------------- driver


def compare(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> dict[str, Any]:
    """The new layout's rows vs the old's: integers and quantiles equal, floats to 1e-11."""
    worst, problems = 0.0, []
    if [(r["model"], r["niche"]) for r in old] != [(r["model"], r["niche"]) for r in new]:
        return {"same_rows": False, "max_rel_diff": None, "problems": ["different (model, niche) rows"]}
    for a, b in zip(old, new):
        for key, x in a.items():
            y = b.get(key)
            if isinstance(x, float) and isinstance(y, float):
                if math.isnan(x) and math.isnan(y):
                    continue
                rel = abs(x - y) / max(abs(x), 1e-300)
                exact = key.endswith("latency_ms")
                worst = max(worst, rel)
                if (exact and x != y) or rel > 1e-11:
                    problems.append(f"{a['model']}/{a['niche']} {key}: {x!r} vs {y!r}")
            elif x != y:
                problems.append(f"{a['model']}/{a['niche']} {key}: {x!r} vs {y!r}")
    return {"same_rows": not problems, "max_rel_diff": worst, "problems": problems[:20]}


def run_child(tree: Path, store: Path, jobs: int, args: argparse.Namespace) -> dict[str, Any]:
    out = store.parent / f"{store.name}.json"
    cmd = ["nice", "-n", "10", sys.executable, str(HERE), "--child", "--tree", str(tree), "--store", str(store),
           "--jobs", str(jobs), "--seed", str(args.seed), "--load-batch", str(args.load_batch), "--child-out", str(out),
           "--slow-s", str(args.slow_s)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    subprocess.run(cmd, check=True, env=env)
    try:
        return json.loads(out.read_text())
    finally:
        shutil.rmtree(store, ignore_errors=True)
        out.unlink(missing_ok=True)


def tables_md(doc: dict[str, Any]) -> str:
    out = ["## Quarterly report at scale: old layout (event log, FINAL) vs new (report rollups, 0012)", "",
           f"Machine: {doc['machine']}. Old tree: {doc['old_tree']} ({doc['old_commit']}); new tree: {doc['new_commit']}. "
           "Same synthetic quarter (bench/clickhouse.py loader, seed "
           f"{doc['args']['seed']}) in both; each (layout, size) in its own process and chDB path.", "",
           "| jobs | layout | load s | disk MB | report query cold s | report query warm s | warm runs s "
           "| benchmark() no intervals s | benchmark() with bootstrap s | load avg |",
           "|---:|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    for s in doc["sizes"]:
        for name in ("old", "new"):
            r = s[name]
            out.append(f"| {r['jobs']:,} | {name} ({r['path']}) | {r['load_wall_s']:.0f} | {r['disk_bytes'] / 1e6:,.0f} "
                       f"| {r['report_query_cold_s']:.3f} | {r['report_query_warm_s']:.3f} "
                       f"| {' / '.join(f'{t:.3f}' for t in r['report_query_warm_runs_s'])} "
                       f"| {r['benchmark_no_intervals_s']:.3f} | {r['benchmark_with_intervals_s']:.3f} | {r['loadavg_1m']:.1f} |")
    out += ["", "| jobs | report query warm: old / new | benchmark() no intervals: old / new "
            "| benchmark() with bootstrap: old / new | new rows = old rows | max rel diff |", "|---:|---:|---:|---:|---|---:|"]
    for s in doc["sizes"]:
        o, n, c = s["old"], s["new"], s["comparison"]
        out.append(f"| {o['jobs']:,} | {o['report_query_warm_s'] / n['report_query_warm_s']:.1f}x "
                   f"| {o['benchmark_no_intervals_s'] / n['benchmark_no_intervals_s']:.1f}x "
                   f"| {o['benchmark_with_intervals_s'] / n['benchmark_with_intervals_s']:.1f}x "
                   f"| {c['same_rows']} | {c['max_rel_diff'] if c['max_rel_diff'] is not None else '-'} |")
        for p in c["problems"]:
            out.append(f"|  | {p} | | | | |")
    out += ["", "Grafana panel queries (deploy/grafana/dashboards/sentinel.json of each tree; macros expanded for the "
            "quarter with a 1-hour interval; warm = median of 3 after a warm-up), seconds old / new (ratio):", "",
            "| panel | " + " | ".join(f"{s['old']['jobs']:,} jobs" for s in doc["sizes"]) + " |",
            "|---|" + "---:|" * len(doc["sizes"])]
    titles = [p["panel"] for p in doc["sizes"][0]["old"]["grafana"]] if doc["sizes"] else []
    for i, title in enumerate(titles):
        cells = []
        for s in doc["sizes"]:
            o, n = s["old"]["grafana"][i]["warm_s"], s["new"]["grafana"][i]["warm_s"]
            cells.append(f"{o:.3f} / {n:.3f} ({o / n:.1f}x)")
        out.append(f"| {title} | " + " | ".join(cells) + " |")
    out += ["", "Report query = gpu_types + the benchmark table (what benchmark() runs for it); warm = median of 3 "
            f"after a cold run with chDB caches dropped (one run when cold took {doc['args']['slow_s']} s or more). "
            "benchmark() no intervals = the whole report with BootstrapConfig(resamples=0), median of 2 after a "
            "warm-up (one when slow); with bootstrap = once, default 1000 resamples "
            "(its numpy part is independent of the store's size). Same rows = every integer and latency quantile "
            "equal, CLIP and cost within 1e-11 relative (summation order).",
            f"\nTotal run time {doc['elapsed_s']:.0f} s."]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old-tree", type=Path, help="git worktree of the commit before the rollups")
    ap.add_argument("--sizes", default="100000,1000000,10000000")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--load-batch", type=int, default=50_000)
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--slow-s", type=float, default=20.0,
                    help="a timing this slow (s) is not repeated (warm = the one run after the first)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tree", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--jobs", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        args.child_out.write_text(json.dumps(child(args.tree, args.store, args.jobs, args.seed, args.load_batch, args.slow_s), default=str))
        return
    if not args.old_tree:
        ap.error("--old-tree is required")
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="sentinel-report-scale-", dir=args.data_dir))
    commit = lambda tree: subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],  # noqa: E731
                                         capture_output=True, text=True).stdout.strip()
    sys.path.insert(0, str(NEW_TREE / "bench"))
    from _machine import cores_available, cpu_model

    doc: dict[str, Any] = {"benchmark": "bench/report_scale.py", "args": {k: str(v) for k, v in vars(args).items()},
                           "machine": f"{cpu_model()}, {cores_available()} cores", "old_tree": str(args.old_tree),
                           "old_commit": commit(args.old_tree), "new_commit": commit(NEW_TREE), "sizes": []}
    try:
        for n in [int(s) for s in args.sizes.split(",") if s]:
            size: dict[str, Any] = {}
            for name, tree in (("old", args.old_tree), ("new", NEW_TREE)):
                log(f"{n:,} jobs, {name} layout ({tree})")
                size[name] = run_child(tree, tmp / f"{name}-{n}", n, args)
            size["comparison"] = compare(size["old"]["rows"], size["new"]["rows"])
            log(f"  ratio report query {size['old']['report_query_warm_s'] / size['new']['report_query_warm_s']:.1f}x; "
                f"same rows: {size['comparison']['same_rows']}")
            doc["sizes"].append(size)
            args.out.with_suffix(".partial.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    doc["elapsed_s"] = time.perf_counter() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    text = tables_md(doc)
    args.out.with_suffix(".md").write_text(text + "\n")
    args.out.with_suffix(".partial.json").unlink(missing_ok=True)
    print(text)


if __name__ == "__main__":
    main()
