"""One bench on two trees in the same run: an older commit (default 7b49e97, the tree before the
worker redesign) and this tree, in alternating rounds, with new/old ratios per metric.

Each tree runs its *own* copy of the bench script (``bench/<name>.py`` as of that commit) with
the same arguments, from its own root with ``PYTHONPATH`` set to it, so the script and the worker
it starts import that tree's code. Round 1 runs old then new, round 2 new then old, and so on:
both sides see the same stretch of a shared machine. Per metric: each side's median over the
rounds, new/old of the medians, and new/old within each round (old and new of one round ran
back to back). The 1-min load average is read before and after every run.

The older tree is ``--old-tree`` when given, else a detached git worktree of ``--ref`` made
under a temporary directory and removed at the end.

``cli_help`` is built in (no script): CPU seconds (user + sys, from ``/usr/bin/time``) of
``sentinel --help`` and ``sentinel sql --help`` (``python -m cli.main`` where the tree has it,
else the old ``python -m streams.cli``).

Usage::

    python bench/compare.py metadata_path [--rounds 3] -- --quick
    python bench/compare.py scoring --rounds 3 -- --quick
    python bench/compare.py scoring --rounds 2 --note "..." -- --arch ViT-B-32 --quick --latency-repeats 0
    python bench/compare.py cli_help --rounds 3
    python bench/compare.py --from-json bench/results/compare_scoring.json   # re-render, measure nothing

Writes ``bench/results/compare_<name>.json`` and ``.md`` (name: the bench, plus ``_<arch>`` for
``--arch``) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402
from _machine import cores_available, cpu_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
DEFAULT_REF = "7b49e97"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def load1() -> float:
    return round(os.getloadavg()[0], 2)


# --------------------------------------------------------------------------- metrics per bench


@dataclass(frozen=True)
class Metric:
    name: str
    get: Callable[[dict[str, Any]], float | None]
    higher_is_better: bool = True


def path(*keys: Any) -> Callable[[dict[str, Any]], float | None]:
    def get(doc: dict[str, Any]) -> float | None:
        cur: Any = doc
        for k in keys:
            if not isinstance(cur, (dict, list)):
                return None
            try:
                cur = cur[k]
            except (KeyError, IndexError, TypeError):
                return None
        return float(cur) if isinstance(cur, (int, float)) else None
    return get


def median_of(list_path: tuple[Any, ...], *keys: Any) -> Callable[[dict[str, Any]], float | None]:
    """The median of ``keys`` over the list at ``list_path`` (e.g. the rounds of a run)."""
    def get(doc: dict[str, Any]) -> float | None:
        cur: Any = doc
        for k in list_path:
            cur = cur.get(k) if isinstance(cur, dict) else None
        values = [path(*keys)(item) for item in (cur or [])]
        values = [v for v in values if v is not None]
        return med(values) if values else None
    return get


def latency_p50(fraction: float) -> Callable[[dict[str, Any]], float | None]:
    def get(doc: dict[str, Any]) -> float | None:
        runs = (((doc.get("stack") or {}).get("variants") or {}).get("default") or {}).get("latency") or []
        found = [r["p50_ms"] for r in runs if abs(r.get("fraction", -1) - fraction) < 1e-9]
        return med(found) if found else None
    return get


RUNS = ("stack", "rounds")
DEFAULT = ("stack", "variants", "default")
METRICS: dict[str, list[Metric]] = {
    "metadata_path": [
        Metric("worker events/s (publish -> tallied and stored)", path("summary", "worker_events_s")),
        Metric("raw aiokafka events/s", path("summary", "raw_events_s")),
        Metric("worker / raw aiokafka", path("summary", "ratio")),
        Metric("raw + core (no Faust) events/s", path("summary", "core_events_s")),
        Metric("worker CPU µs/event", median_of(RUNS, "cpu", "worker_cpu_us_per_event"), False),
        Metric("worker event-loop CPU s per 1k events",
               lambda d: _per_k(d, "worker_event_loop_cpu_s"), False),
        Metric("broker CPU µs/event", median_of(RUNS, "cpu", "broker_cpu_us_per_event"), False),
        Metric("worker cores busy", median_of(RUNS, "cpu", "worker_cores")),
        Metric("chDB insert share of elapsed", median_of(RUNS, "insert_share_of_elapsed"), False),
    ],
    "scoring": [
        Metric("end to end events/s (worker as shipped)", path(*DEFAULT, "capacity_events_s")),
        Metric("end to end / raw encoder, 1 thread", path(*DEFAULT, "ratio_to_raw_1thread")),
        Metric("end to end / raw encoder, all threads", path(*DEFAULT, "ratio_to_raw")),
        Metric("raw encoder img/s, 1 thread (in process)", path("scorer", "median", "raw_img_s_1thread")),
        Metric("scorer core img/s, 1 thread (decode + score)", path("scorer", "median", "core_img_s_1thread")),
        Metric("scorer core / raw, 1 thread", path("scorer", "median", "ratio_1thread")),
        Metric("worker CPU ms/event", median_of(DEFAULT + ("runs",), "cpu", "per_event_ms", "worker_cpu_s"), False),
        Metric("worker event-loop CPU ms/event",
               median_of(DEFAULT + ("runs",), "cpu", "per_event_ms", "worker_event_loop_cpu_s"), False),
        Metric("mean score batch", median_of(DEFAULT + ("runs",), "mean_batch")),
        Metric("latency p50 ms at 80% of capacity", latency_p50(0.8), False),
    ],
    "cli_help": [
        Metric("sentinel --help CPU s (user+sys)", path("help", "cpu_s"), False),
        Metric("sentinel --help user s", path("help", "user_s"), False),
        Metric("sentinel --help sys s", path("help", "sys_s"), False),
        Metric("sentinel --help wall s", path("help", "wall_s"), False),
        Metric("sentinel sql --help CPU s (user+sys)", path("sql_help", "cpu_s"), False),
        Metric("sentinel sql --help wall s", path("sql_help", "wall_s"), False),
    ],
}


def _per_k(doc: dict[str, Any], key: str) -> float | None:
    rounds = (doc.get("stack") or {}).get("rounds") or []
    values = [r["cpu"][key] / r["events"] * 1000 for r in rounds if key in r.get("cpu", {})]
    return med(values) if values else None


# Targets of issue #16 (the worker redesign): (metric, "ratio" = new/old of the medians or "new" =
# the new tree's median, minimum)
TARGETS: dict[str, list[tuple[str, str, float]]] = {
    "metadata_path": [("worker events/s (publish -> tallied and stored)", "ratio", 2.0)],
    "scoring": [("end to end events/s (worker as shipped)", "ratio", 2.0)],
    "scoring_vit_b_32": [("end to end / raw encoder, 1 thread", "new", 0.85)],
    "cli_help": [("sentinel --help CPU s (user+sys)", "new_below", 1.0),
                 ("sentinel sql --help CPU s (user+sys)", "new_below", 1.0)],
}


# --------------------------------------------------------------------------- trees


def git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


class Trees:
    """The old tree (a given path, or a worktree of ``ref`` made here and removed in ``close``)
    and this one."""

    def __init__(self, ref: str, old_tree: Path | None) -> None:
        self.made: Path | None = None
        if old_tree is None:
            self.tmp = Path(tempfile.mkdtemp(prefix="sentinel-compare-"))
            old_tree = self.tmp / "old"
            git("worktree", "add", "--detach", str(old_tree), ref)
            self.made = old_tree
        self.old = old_tree.resolve()
        self.new = REPO

    def describe(self, tree: Path) -> dict[str, Any]:
        dirty = git("status", "--porcelain", "--untracked-files=no", cwd=tree)
        code = git("log", "-1", "--format=%H %s", "--", ".", ":(exclude)bench", cwd=tree).split(" ", 1)
        return {"path": str(tree), "commit": git("rev-parse", "HEAD", cwd=tree),
                "subject": _short(git("log", "-1", "--format=%s", cwd=tree)), "dirty": bool(dirty),
                "changes": [line[3:] for line in dirty.splitlines()],
                "code_commit": code[0], "code_subject": _short(code[1] if len(code) > 1 else "")}

    def close(self) -> None:
        if self.made is not None:
            try:
                git("worktree", "remove", "--force", str(self.made))
            finally:
                shutil.rmtree(self.tmp, ignore_errors=True)


def _short(text: str, n: int = 120) -> str:
    return text if len(text) <= n else text[:n - 1].rstrip() + "…"


def tree_env(tree: Path) -> dict[str, str]:
    """The tree's code first on the path; PYTHONPATH reaches the workers the benches start."""
    return {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "PYTHONDONTWRITEBYTECODE": "1"}


# --------------------------------------------------------------------------- one run


def run_script(tree: Path, bench: str, bench_args: list[str], out: Path, log_path: Path,
               timeout: float) -> dict[str, Any]:
    """``bench/<bench>.py`` of ``tree`` with ``--out``; its output goes to ``log_path``."""
    cmd = [sys.executable, str(tree / "bench" / f"{bench}.py"), *bench_args, "--out", str(out)]
    with log_path.open("ab") as fh:
        proc = subprocess.Popen(cmd, cwd=tree, env=tree_env(tree), stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout)
        except BaseException:  # timeout, Ctrl-C, SIGTERM: the bench stops its stacks on SIGTERM
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            raise
    if rc != 0 or not out.exists():
        raise RuntimeError(f"{cmd} exited with {rc}; see {log_path}:\n{log_path.read_text(errors='replace')[-3000:]}")
    return json.loads(out.read_text())


def time_cpu(tree: Path, args: list[str]) -> dict[str, float]:
    """user, sys and wall seconds of ``python -m <the tree's CLI> <args>`` by /usr/bin/time."""
    entry = "cli.main" if (tree / "cli" / "main.py").exists() else "streams.cli"
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "TIME %U %S", sys.executable, "-m", entry, *args], cwd=tree,
                          env=tree_env(tree), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("TIME ")]
    if proc.returncode != 0 or not line:
        raise RuntimeError(f"{entry} {' '.join(args)} in {tree}: rc {proc.returncode}\n{proc.stderr[-2000:]}")
    user, sys_ = (float(x) for x in line[-1].split()[1:3])
    return {"entry": entry, "user_s": user, "sys_s": sys_, "cpu_s": user + sys_, "wall_s": wall}


def run_cli_help(tree: Path) -> dict[str, Any]:
    return {"help": time_cpu(tree, ["--help"]), "sql_help": time_cpu(tree, ["sql", "--help"])}


# --------------------------------------------------------------------------- the comparison


def result_name(bench: str, bench_args: list[str]) -> str:
    if "--arch" in bench_args:
        arch = bench_args[bench_args.index("--arch") + 1]
        return f"{bench}_{re.sub(r'[^a-z0-9]', '_', arch.lower())}"
    return bench


def compare(args: argparse.Namespace, trees: Trees, work: Path) -> dict[str, Any]:
    metrics = METRICS.get(args.bench, [])
    runs: list[dict[str, Any]] = []
    t_start = time.monotonic()
    longest_round = 0.0
    for r in range(args.rounds):
        elapsed = time.monotonic() - t_start
        if r > 0 and args.budget_s and elapsed + longest_round > args.budget_s:
            log(f"round {r + 1} skipped: {elapsed:.0f} s spent, a round takes ~{longest_round:.0f} s, "
                f"budget {args.budget_s:.0f} s")
            break
        order = (("old", trees.old), ("new", trees.new)) if r % 2 == 0 else (("new", trees.new), ("old", trees.old))
        t_round = time.monotonic()
        for side, tree in order:
            la0, t0 = load1(), time.monotonic()
            log(f"round {r + 1}/{args.rounds}: {side} tree ({tree}) ... load {la0:.1f}")
            if args.bench == "cli_help":
                doc = run_cli_help(tree)
            else:
                doc = run_script(tree, args.bench, args.bench_args, work / f"{side}_{r + 1}.json",
                                 work / f"{side}.log", args.run_timeout)
            run = {"round": r + 1, "side": side, "wall_s": time.monotonic() - t0, "load1_start": la0,
                   "load1_end": load1(), "metrics": {m.name: m.get(doc) for m in metrics}}
            if args.bench == "cli_help":
                run["raw"] = doc
            else:
                run["bench_markdown"] = doc.get("table_markdown")
            runs.append(run)
            shown = "; ".join(f"{k} {v:,.4g}" for k, v in run["metrics"].items() if v is not None)
            log(f"  {side}: {run['wall_s']:.0f} s, load {la0:.1f} -> {run['load1_end']:.1f}: {shown}")
        longest_round = max(longest_round, time.monotonic() - t_round)
    return {"runs": runs, "summary": summarize(metrics, runs)}


def summarize(metrics: list[Metric], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for m in metrics:
        per_side = {side: [r["metrics"][m.name] for r in runs if r["side"] == side
                           and r["metrics"].get(m.name) is not None] for side in ("old", "new")}
        old, new = med(per_side["old"]), med(per_side["new"])
        paired = []
        for rnd in sorted({r["round"] for r in runs}):
            o = next((r["metrics"].get(m.name) for r in runs if r["round"] == rnd and r["side"] == "old"), None)
            n = next((r["metrics"].get(m.name) for r in runs if r["round"] == rnd and r["side"] == "new"), None)
            if o and n is not None:
                paired.append(n / o)
        out.append({"metric": m.name, "higher_is_better": m.higher_is_better, "old": per_side["old"],
                    "new": per_side["new"], "old_median": old, "new_median": new,
                    "ratio": new / old if old else float("nan"), "ratio_by_round": paired})
    return out


def check_targets(name: str, summary: list[dict[str, Any]], baseline: bool = True) -> list[dict[str, Any]]:
    """The issue's targets met or not; new/old ones only when the old tree is the pre-redesign
    ``DEFAULT_REF`` (``baseline``): against any other commit the ratio answers another question."""
    rows = {s["metric"]: s for s in summary}
    out = []
    for metric, kind, bound in TARGETS.get(name, []):
        s = rows.get(metric)
        if s is None or (kind == "ratio" and not baseline):
            continue
        value = {"ratio": s["ratio"], "new": s["new_median"], "new_below": s["new_median"]}[kind]
        met = value < bound if kind == "new_below" else value >= bound
        what = {"ratio": f"new/old >= {bound:g}", "new": f"new >= {bound:g}", "new_below": f"new < {bound:g}"}[kind]
        out.append({"metric": metric, "target": what, "value": value, "met": met})
    return out


# --------------------------------------------------------------------------- report


def fmt(x: float | None) -> str:
    if x is None or x != x:
        return "n/a"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 1:
        return f"{x:,.2f}"
    return f"{x:.4f}"


def describe(tree: dict[str, Any]) -> str:
    out = f"`{tree['commit'][:7]}` {tree['subject']}"
    if tree.get("code_commit") and tree["code_commit"] != tree["commit"]:
        out += f" (code outside bench/ as of `{tree['code_commit'][:7]}` {tree['code_subject']})"
    if tree.get("dirty"):
        out += f"; uncommitted changes to {', '.join(tree.get('changes') or ['?'])}"
    return out + "."


def report(doc: dict[str, Any]) -> str:
    old, new = doc["trees"]["old"], doc["trees"]["new"]
    rounds = len({r["round"] for r in doc["runs"]})
    L = [f"### {doc['name']}: {old['commit'][:7]} (old) vs {new['commit'][:7]}{' + changes' if new['dirty'] else ''} "
         f"(new), same run", "",
         f"Old: {describe(old)}", "", f"New: {describe(new)}", "",
         f"Bench: `bench/{doc['bench']}.py {' '.join(doc['bench_args'])}`" if doc["bench"] != "cli_help"
         else "Bench: `/usr/bin/time -f '%U %S' python -m <cli> --help` and `... sql --help` in each tree "
              "(`cli.main` in the new tree, `streams.cli` in the old one)",
         f"{rounds} round{'s' if rounds != 1 else ''}, alternating which tree goes first (round 1 old first); "
         "each tree runs its own copy of the script and its own code.", ""]
    if doc.get("note"):
        L += [f"Shortened / notes: {doc['note']}", ""]
    L += ["| metric | old (median) | new (median) | new/old | new/old by round | old runs | new runs |",
          "|---|---:|---:|---:|---|---|---|"]
    for s in doc["summary"]:
        L.append(f"| {s['metric']}{'' if s['higher_is_better'] else ' (lower is better)'} | {fmt(s['old_median'])} "
                 f"| {fmt(s['new_median'])} | **{fmt(s['ratio'])}** | {' / '.join(fmt(x) for x in s['ratio_by_round'])} "
                 f"| {' / '.join(fmt(x) for x in s['old'])} | {' / '.join(fmt(x) for x in s['new'])} |")
    if doc["targets"]:
        L += ["", "Targets (issue #16): " + "; ".join(
            f"{t['metric']}: {t['target']} -> {fmt(t['value'])} ({'met' if t['met'] else 'NOT met'})"
            for t in doc["targets"])]
    L += ["", "| round | tree | wall s | load (1 min) start -> end |", "|---:|---|---:|---|"]
    for r in doc["runs"]:
        L.append(f"| {r['round']} | {r['side']} | {r['wall_s']:.0f} | {r['load1_start']:.1f} -> {r['load1_end']:.1f} |")
    m = doc["machine"]
    L += ["", f"Machine: {m['cpu_model']}, {m['cores_available']}/{m['cpu_count']} cores, shared with other jobs "
          f"(1-min load average above, per run; {doc['loadavg_start'][0]:.1f} at start, {doc['loadavg_end'][0]:.1f} "
          f"at end): read the ratios, not the absolute rates. Took {doc['runtime_s']:.0f} s."]
    return "\n".join(L)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    argv = list(sys.argv[1:] if argv is None else argv)
    bench_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, bench_args = argv[:cut], argv[cut + 1:]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 usage="%(prog)s BENCH [options] [-- bench options]")
    ap.add_argument("bench", nargs="?", help="a script of bench/ (metadata_path, scoring, ...; .py optional) or cli_help")
    ap.add_argument("--ref", default=DEFAULT_REF, help=f"the old commit (default {DEFAULT_REF})")
    ap.add_argument("--old-tree", type=Path, help="an existing checkout of the old commit (else a temporary worktree)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds, each one run per tree (default 3)")
    ap.add_argument("--budget-s", type=float, default=0.0,
                    help="skip later rounds when another would end past this many seconds (0: no limit)")
    ap.add_argument("--run-timeout", type=float, default=900.0, help="seconds one bench run may take")
    ap.add_argument("--note", default="", help="what was shortened and why, printed with the results")
    ap.add_argument("--name", help="results name (default: the bench, plus _<arch> for --arch)")
    ap.add_argument("--out", type=Path, help="JSON output (default bench/results/compare_<name>.json)")
    ap.add_argument("--from-json", type=Path, metavar="PATH",
                    help="measure nothing: print the report of a previous comparison and rewrite its .md")
    args = ap.parse_args(argv)
    if args.from_json:
        return args
    if not args.bench:
        ap.error("which bench?")
    args.bench = Path(args.bench).stem
    args.bench_args = bench_args
    if args.bench != "cli_help" and not (REPO / "bench" / f"{args.bench}.py").exists():
        ap.error(f"no bench/{args.bench}.py")
    args.name = args.name or result_name(args.bench, bench_args)
    args.out = args.out or RESULTS_DIR / f"compare_{args.name}.json"
    return args


def main() -> None:
    args = parse_args()
    if args.from_json:  # measure nothing: render a previous comparison again
        doc = json.loads(args.from_json.read_text())
        doc["table_markdown"] = text = report(doc)
        print(text)
        args.from_json.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        args.from_json.with_suffix(".md").write_text(text.rstrip() + "\n")
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t0 = time.perf_counter()
    doc: dict[str, Any] = {"bench": args.bench, "name": args.name, "bench_args": args.bench_args, "note": args.note,
                           "ref": args.ref, "loadavg_start": [round(x, 2) for x in os.getloadavg()],
                           "machine": {"cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
                                       "cores_available": cores_available(), "python": sys.version.split()[0]}}
    trees = Trees(args.ref, args.old_tree)
    work = Path(tempfile.mkdtemp(prefix="sentinel-compare-runs-"))
    try:
        doc["trees"] = {"old": trees.describe(trees.old), "new": trees.describe(trees.new)}
        doc.update(compare(args, trees, work))
    finally:
        trees.close()
        shutil.rmtree(work, ignore_errors=True)
    baseline = doc["trees"]["old"]["commit"] == git("rev-parse", f"{DEFAULT_REF}^{{commit}}")
    doc["targets"] = check_targets(args.name, doc["summary"], baseline)
    doc["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    doc["runtime_s"] = time.perf_counter() - t0
    text = report(doc)
    print(text)
    path = write_results(args.name, doc, text, args.out)
    log(f"wrote {path} and {path.with_suffix('.md')}")


if __name__ == "__main__":
    main()
