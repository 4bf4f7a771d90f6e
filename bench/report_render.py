"""The HTML report's size and render time, this tree against a git revision, in one run.

    python bench/report_render.py [--against REV] [--reps N]

Renders one synthetic report (8 models x 3 niches, 101 latency quantiles per model, 47 snapshot
windows of trend, intervals) with ``reports.report.render_html`` in a fresh process: the import
of ``reports.report`` (torch comes with it, through reports.quality), the first render (the
renderer's own lazy imports included: what one ``sentinel report -f html`` pays on top) and the
median of the next ``--reps``. With ``--against REV`` the same script runs on ``git archive REV`` in a
subprocess, and both rows print with their ratios (this tree / REV).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def synthetic_report() -> dict:
    models, niches = [f"model-{k}" for k in range(8)], ["headshot", "product", "portrait"]

    def row(m: int, niche: str | None) -> dict:
        c, cost, p95 = 40 + 3 * m, 0.002 * (1 + m) ** 1.5, 700 + 250 * m
        r = {"model": models[m], "provider": "api" if m == 7 else "self_hosted", "jobs": 1000 + m, "fid": 0.1 + m / 50,
             "cmmd": 0.5, "clip": 20.0 + m, "human": 45.0 + m, "composite": c, "p50_latency_ms": p95 / 3,
             "p95_latency_ms": p95, "cost_per_image_usd": cost, "composite_missing": [], "composite_ci": [c - 1, c + 1.2],
             "cost_per_image_usd_ci": [cost * 0.9, cost * 1.1], "p95_latency_ms_ci": [p95 * 0.9, p95 * 1.2],
             "clip_ci": [19.0 + m, 21.0 + m], "ci_jobs": 1000}
        return r if niche is None else {**r, "niche": niche}

    levels = [i / 100 for i in range(101)]
    trend = [{"window_start": f"2026-01-{1 + h // 24:02d}T{h % 24:02d}:00:00+00:00",
              "window_end": f"2026-01-{1 + (h + 1) // 24:02d}T{(h + 1) % 24:02d}:00:00+00:00", "model": m, "jobs": 100,
              "composite": 40 + 3 * k + (h % 7) / 3, "fid": None, "fid_score": None, "cmmd": None, "clip": None,
              "human": None, "cost_per_image_usd": None, "p50_latency_ms": None, "p95_latency_ms": None}
             for k, m in enumerate(models) for h in range(47)]
    return {
        "window": {"from": "2026-01-01T00:00:00+00:00", "to": "2026-01-03T00:00:00+00:00", "all_time": False},
        "scorer_version": "latest per job",
        "quality": {"weights": {"fid": 0.4, "clip": 0.3, "human": 0.3}, "clip_range": {"floor": 0, "ceiling": 100},
                    "references": {}, "human": {}},
        "weights": {"fid": 0.4, "clip": 0.3, "human": 0.3},
        "pricing": {"platform_fee_usd_per_image": 0.002, "orchestration_overhead": 0.15, "gpu_usd_per_hour": {"L4": 0.8}},
        "intervals": {"method": "percentile bootstrap", "level": 0.95, "resamples": 1000, "seed": 0,
                      "max_jobs_per_group": 5000, "enabled": True},
        "models": [row(m, None) for m in range(8)],
        "niches": [row(m, n) for m in range(8) for n in niches],
        "latency_quantiles": {"levels": levels, "models": {m: [300.0 * (1 + 20 * p**3) * (1 + k / 4) for p in levels]
                                                           for k, m in enumerate(models)}},
        "trend": trend,
    }


def measure(reps: int) -> dict:
    report = synthetic_report()
    t0 = time.perf_counter()
    from reports.report import render_html

    imported = time.perf_counter() - t0  # reports.report's own imports (torch via reports.quality)
    t0 = time.perf_counter()
    page = render_html(report)
    first = time.perf_counter() - t0  # lazy imports of the renderer (jinja2, matplotlib) included
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        render_html(report)
        times.append(time.perf_counter() - t)
    return {"bytes": len(page.encode()), "import_s": imported, "first_s": first, "median_s": statistics.median(times),
            "svgs": page.count("<svg"), "scripts": page.lower().count("<script")}


def run_at(rev: str, reps: int) -> dict:
    """This script on ``git archive REV`` (its own reports/, sentinel/ ...), in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "tree.tar"
        subprocess.run(["git", "-C", str(REPO), "archive", "-o", str(archive), rev], check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--json", "--reps", str(reps)],
                             cwd=tmp, env={"PYTHONPATH": tmp, "PATH": "/usr/bin:/bin"},
                             capture_output=True, text=True, check=True)
        return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", help="git revision to compare with (e.g. main)")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--json", action="store_true", help="print this tree's numbers as JSON only")
    args = ap.parse_args()
    if args.json:
        sys.path.insert(0, str(Path.cwd()))
        print(json.dumps(measure(args.reps)))
        return
    rows = {"this tree": run_at_here(args.reps)}
    if args.against:
        rows[args.against] = run_at(args.against, args.reps)
    print(f"{'':12} {'bytes':>10} {'import s':>9} {'first render s':>15} {'median render s':>16} {'svg':>4} {'script':>6}")
    for name, r in rows.items():
        print(f"{name:12} {r['bytes']:>10,} {r['import_s']:>9.2f} {r['first_s']:>15.3f} {r['median_s']:>16.4f} "
              f"{r['svgs']:>4} {r['scripts']:>6}")
    if args.against:
        a, b = rows["this tree"], rows[args.against]
        print(f"ratio (this tree / {args.against}): size {a['bytes'] / b['bytes']:.2f}x, first render "
              f"{a['first_s'] / b['first_s']:.2f}x, median render {a['median_s'] / b['median_s']:.2f}x")


def run_at_here(reps: int) -> dict:
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--json", "--reps", str(reps)], cwd=REPO,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


if __name__ == "__main__":
    main()
