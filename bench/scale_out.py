"""Scale-out throughput: scored events/s with 1 and 2 scoring workers sharing a store, and the lone worker.

For each ``--arch`` (default: the tiny CLIP ``sentinel.clip.TINY_ARCH`` and ``ViT-B-32``, both
with seeded random weights, as the worker builds them with no checkpoint), three embedded stacks
(``devstack.stack.EmbeddedStack``: real noida broker, Faust worker subprocesses, chDB) are started
side by side, each with ``--partitions`` input partitions (4: both workers of the 2-worker stack
get two):

* ``lone``: one worker that owns the embedded chDB itself (``workers=1``, no store: the layout
  before the store role);
* ``store-1``: the store role (``sentinel store``) owns chDB and one worker stores through it over
  HTTP (``workers=1, store=True``);
* ``store-2``: the store role and two workers sharing the partitions (``workers=2``).

Every worker runs torch with ``torch_threads=--torch-threads`` (1: on a 2-core machine two workers
with one intra-op thread each is all the cores there are; the lone and 1-worker stacks get the same
single thread, which is also the shipped default on 2 cores, so only the number of workers changes).

After a warm-up the stacks wait idle while another one is measured (an idle stack uses a few
hundredths of a core: measured during every run and reported). They are not frozen with SIGSTOP
as ``bench/scoring.py`` does: after a whole 2-worker stack (broker included) was frozen for longer
than the workers' 6 s session timeout, one worker went on reporting partitions the broker had
given to the other (seen once, > 4 min: noida-db's group coordinator with a leader stalled past
the session timeout leaves two members holding the same partitions). Each round measures
every stack once, the order alternating between rounds (forward, reverse, ...): wait until the
stack's workers hold each partition exactly once, ``--rewarm`` unmeasured events, record the
load average, then one throughput run as ``bench/scoring.py`` part 3 does it (its ``Publisher``,
``Probe`` and ``throughput_run``): publish ``--events`` pre-encoded ``tests/conftest.make_event``
events through ``inference.publisher.JobPublisher`` as fast as it takes them and poll
``sql/reports/progress.sql`` through ``warehouse.client.open_reader`` (through the store, or the
lone worker, whichever owns chDB) until all are stored and scored; events/s = events / (that moment
- first publish). Reported: the median over rounds per stack, and
the ratios 2 workers / 1 worker (``store-2 / store-1``) and store / lone (``store-1 / lone``) taken
within each round (median of those), plus CPU seconds per event of the workers, the store, the
broker and this process, how the 2-worker stack's events split between its workers, and scored /
events: above 1 when a worker scored some events twice (its hole healer re-read offsets that sat
unfinished for 20 s behind a backlog: docs in worker/delivery/commit.py).

The machine may be shared: the 1-minute load average is recorded before every run and printed.

Usage::

    python bench/scale_out.py [--arch ViT-B-32 ...] [--quick] [--out bench/results/scale_out.json]

Writes ``bench/results/scale_out.json`` and the table as ``.md`` next to it (``--quick``:
``scale_out_quick.*`` unless ``--out``). Every stack is stopped (also on Ctrl-C / SIGTERM) and its
temporary data directory removed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import scoring  # bench/scoring.py: sets up sys.path (repo, tests) and the offline environment
from _common import loadavg, machine_info, write_results
from scoring import Probe, Publisher, group_cpu_s, med, prepare, throughput_run, worker_metrics

from config.settings import load_settings  # noqa: E402
from devstack.stack import EmbeddedStack  # noqa: E402
from sentinel.clip import TINY_ARCH  # noqa: E402

ARCHS = (TINY_ARCH, "ViT-B-32")
CONFIGS = (("lone", 1, False), ("store-1", 1, True), ("store-2", 2, True))  # name, workers, store
# (tiny CLIP, tiny --quick, other arch, other --quick); options given on the command line win
SIZES: dict[str, tuple[Any, Any, Any, Any]] = {
    "events": (3000, 600, 360, 64),
    "warmup": (300, 100, 48, 16),
    "rewarm": (64, 32, 16, 8),
    "rounds": (3, 2, 2, 1),
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def sizes_for(args: argparse.Namespace, arch: str) -> dict[str, Any]:
    col = (0 if arch == TINY_ARCH else 2) + (1 if args.quick else 0)
    return {k: getattr(args, k) if getattr(args, k) is not None else v[col] for k, v in SIZES.items()}


class StackProbe(Probe):
    """scoring.Probe over every worker of the stack: counters summed, CPU of all workers together."""

    def per_worker(self) -> list[dict[str, float]]:
        return [worker_metrics(w.url) for w in self.stack.workers]

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for m in self.per_worker():
            for k, v in m.items():
                out[k] = out.get(k, 0.0) + v
        return out

    def cpu(self) -> dict[str, Any]:
        return {"worker": sum(group_cpu_s(w.proc.pid) for w in self.stack.workers), "worker_threads": {},
                "broker": group_cpu_s(self.stack.broker.pid), "bench": time.process_time(), "wall": time.time()}

    def processes(self) -> dict[str, float]:
        """CPU seconds per process group: each worker, the store, the broker, and this process."""
        out = {f"worker-{i + 1}": group_cpu_s(w.proc.pid) for i, w in enumerate(self.stack.workers)}
        if self.stack.store is not None:
            out["store"] = group_cpu_s(self.stack.store.proc.pid)
        out["broker"] = group_cpu_s(self.stack.broker.pid)
        out["bench"] = time.process_time()
        return out


class Config:
    """One embedded stack of the comparison (idle while another one is measured)."""

    def __init__(self, name: str, workers: int, store: bool, arch: str, args: argparse.Namespace, root: Path) -> None:
        self.name, self.seed, self.workers, self.store_role = name, 0, workers, store
        self.arch, self.args, self.root = arch, args, root
        self.pub: Publisher | None = None
        self.probe: StackProbe | None = None
        self.out: dict[str, Any] = {"workers": workers, "store": store, "runs": [], "rewarm_s": [], "incidents": []}
        self._new_stack()

    def _new_stack(self) -> None:
        n = len(self.out["incidents"])
        tag = self.name if n == 0 else f"{self.name}-restart{n}"
        self.settings = load_settings(env={}, data_dir=self.root / tag, partitions=self.args.partitions,
                                      clip_arch=self.arch, score_batch_size=self.args.batch,
                                      torch_threads=self.args.torch_threads,
                                      app_id=f"sentinel-scale-{os.getpid()}-{tag}")
        self.stack = EmbeddedStack(self.settings, workers=self.workers, store=self.store_role)

    def start(self, warmup: int, attempts: int = 3) -> None:
        """Start, check the workers share the partitions, warm up; a stack that fails is recorded
        as an incident (with its workers' log tails) and replaced by a fresh one."""
        for attempt in range(attempts):
            try:
                return self._bring_up(warmup)
            except Exception as exc:
                if attempt == attempts - 1:
                    raise
                self.recover(exc, "start")

    def recover(self, exc: Exception, when: str) -> None:
        tails = {w.log_path.name: w.log_tail(1500) for w in self.stack.workers}
        errors = {name: [ln for ln in t.splitlines() if "ERROR" in ln or "Error" in ln][-3:] for name, t in tails.items()}
        self.out["incidents"].append({"when": when, "error": f"{type(exc).__name__}: {exc}"[:600], "log_errors": errors,
                                      "t": time.time()})
        log(f"  [{self.name}] INCIDENT at {when}: {type(exc).__name__}: {str(exc)[:300]}; restarting the stack")
        self.stop()
        self._new_stack()

    def _bring_up(self, warmup: int) -> None:
        t = time.perf_counter()
        self.stack.start()
        self.out["stack_start_s"] = time.perf_counter() - t
        self.wait_assigned()
        self.probe = StackProbe(self.stack)
        self.out["reader"] = type(self.probe.reader).__name__
        self.pub = Publisher(self.stack.settings.bootstrap_servers)
        self.out["warmup"] = self._unmeasured(warmup)
        log(f"  [{self.name}] up in {self.out['stack_start_s']:.1f}s, warm-up {warmup} events at "
            f"{self.out['warmup']['events_s']:.1f}/s; partitions {self.partitions()}")

    def _unmeasured(self, n: int) -> dict[str, Any]:
        self.seed += 1
        res = throughput_run(self.pub, self.probe, prepare(self.seed, n), f"job-{self.seed}-", 0.2, 300)
        return {k: v for k, v in res.items() if k not in ("timeline", "cpu")}

    def partitions(self) -> list[list[int]]:
        return [scoring._get_json(f"{w.url}/sentinel/ready/").get("partitions", []) for w in self.stack.workers]

    def wait_assigned(self, timeout: float = 120.0) -> list[list[int]]:
        """Until every worker answers ready and together they hold each input partition exactly once."""
        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            try:
                last = self.partitions()
                flat = sorted(p for ps in last for p in ps)
                if all(last) and flat == list(range(self.settings.partitions)):
                    return last
            except Exception as exc:  # 503 while rebalancing, or a late answer
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.25)
        raise RuntimeError(f"[{self.name}] workers do not share the partitions after {timeout:.0f}s: {last}")

    def _pgids(self) -> list[int]:
        procs = [w.proc for w in self.stack.workers] + ([self.stack.store.proc] if self.stack.store else [])
        return [p.pid for p in procs if p is not None] + ([self.stack.broker.pid] if self.stack.broker.pid else [])

    def cpu_s(self) -> float:
        return sum(group_cpu_s(p) for p in self._pgids())

    def rewarm(self, n: int, warmup: int) -> None:
        t = time.perf_counter()
        try:
            self.wait_assigned()
            self._unmeasured(n)
        except Exception as exc:  # e.g. two workers both holding a partition: a fresh stack
            self.recover(exc, "before a measured run")
            self.start(warmup)
        self.out["rewarm_s"].append(time.perf_counter() - t)

    def measure(self, n: int, round_no: int, poll: float) -> dict[str, Any]:
        assigned = self.wait_assigned()
        self.seed += 1
        items = prepare(10_000 + self.seed, n)
        load = loadavg()
        w0, p0 = self.probe.per_worker(), self.probe.processes()
        res = throughput_run(self.pub, self.probe, items, f"job-{10_000 + self.seed}-", poll, 900)
        w1, p1 = self.probe.per_worker(), self.probe.processes()
        scored = [b.get("sentinel_events_scored", 0) - a.get("sentinel_events_scored", 0) for a, b in zip(w0, w1)]
        stored = {k[len("sentinel_rows_stored["):-1]: sum(b.get(k, 0) - a.get(k, 0) for a, b in zip(w0, w1))
                  for k in set().union(*w1) if k.startswith("sentinel_rows_stored[")}
        run = {"round": round_no, "loadavg_before": load, "loadavg_after": loadavg(), "partitions": assigned,
               "scored_per_worker": scored, "rows_stored": stored, "cpu_ms_per_event": {k: (p1[k] - p0[k]) / n * 1e3 for k in p1},
               **{k: v for k, v in res.items() if k not in ("timeline", "cpu")}}
        run["cpu_cores_busy"] = res["cpu"]["cores_busy"]
        self.out["runs"].append(run)
        log(f"  round {round_no} [{self.name}] {run['events_s']:.1f} events/s (load {load[0]:.1f}; "
            f"per worker {scored}; cpu ms/event " + ", ".join(f"{k} {v:.2f}" for k, v in run["cpu_ms_per_event"].items())
            + ")")
        return run

    def stop(self) -> None:
        try:
            if self.pub is not None:
                self.pub.close()
        except Exception as exc:  # keep going: the stack must stop
            log(f"  [{self.name}] publisher close failed: {exc}")
        finally:
            self.pub = None
            t = time.perf_counter()
            self.stack.stop()
            procs = [w.proc for w in self.stack.workers] + ([self.stack.store.proc] if self.stack.store else [])
            self.out["stopped"] = {"stop_s": time.perf_counter() - t,
                                   "exit_codes": [p.returncode if p else None for p in procs]}


def bench_arch(arch: str, args: argparse.Namespace, deadline: float) -> dict[str, Any]:
    """The three stacks of one arch: started and warmed one after the other, then the rounds."""
    sz = sizes_for(args, arch)
    root = Path(tempfile.mkdtemp(prefix="sentinel-bench-scale-"))
    out: dict[str, Any] = {"arch": arch, "sizes": sz, "configs": {}, "rounds": [], "skipped": []}
    configs: list[Config] = []
    try:
        for name, workers, store in CONFIGS:
            log(f"[{arch}] starting {name} ({workers} worker(s), {'store role' if store else 'no store'}) ...")
            c = Config(name, workers, store, arch, args, root)
            configs.append(c)
            c.start(sz["warmup"])
        for r in range(sz["rounds"]):
            if r > 0 and time.monotonic() > deadline:
                out["skipped"].append(f"rounds {r + 1}-{sz['rounds']} (time budget)")
                break
            order = configs if r % 2 == 0 else configs[::-1]
            row: dict[str, Any] = {"order": [c.name for c in order]}
            for c in order:
                c.rewarm(sz["rewarm"], sz["warmup"])
                others = [x for x in configs if x is not c]
                o0, t0 = sum(x.cpu_s() for x in others), time.time()
                run = c.measure(sz["events"], r + 1, args.poll)
                run["idle_stacks_cores"] = (sum(x.cpu_s() for x in others) - o0) / (time.time() - t0)
                row[c.name] = run["events_s"]
                log(f"    (the other stacks, idle, used {run['idle_stacks_cores']:.2f} cores meanwhile)")
            row["ratio_2w_1w"] = row["store-2"] / row["store-1"]
            row["ratio_store_lone"] = row["store-1"] / row["lone"]
            out["rounds"].append(row)
            log(f"  round {r + 1}: 2 workers / 1 worker {row['ratio_2w_1w']:.2f}, store / lone {row['ratio_store_lone']:.2f}")
    finally:
        for c in configs:
            try:
                c.stop()
            except Exception as exc:
                log(f"  [{c.name}] stop failed: {exc}")
            out["configs"][c.name] = c.out
        if any(c.out["incidents"] or any(c.out.get("stopped", {}).get("exit_codes") or [1]) for c in configs):
            keep = Path(tempfile.gettempdir()) / f"scale-out-logs-{os.getpid()}-{arch}"  # to look at
            for logs in root.glob("*/logs"):
                shutil.copytree(logs, keep / logs.parent.name, dirs_exist_ok=True)
            out["logs_kept"] = str(keep)
            log(f"  an incident, or a process that did not stop cleanly: logs kept in {keep}")
        shutil.rmtree(root, ignore_errors=True)
    for c in configs:
        c.out["events_s"] = med([x["events_s"] for x in c.out["runs"]])
    for key in ("ratio_2w_1w", "ratio_store_lone"):
        out[key] = med([row[key] for row in out["rounds"]])
    return out


def f1(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def join(xs: Any, fmt: str = ".1f") -> str:
    return ", ".join(format(x, fmt) for x in xs)


def report(doc: dict[str, Any]) -> str:
    lines = ["# Scale-out throughput: 1 vs 2 scoring workers (`bench/scale_out.py`)", "",
             f"End to end, publish -> every event stored and scored; {doc['partitions']} input partitions, "
             f"score batch {doc['batch']}, torch_threads={doc['torch_threads']} in every worker; median over "
             f"rounds, the order of the stacks alternating between rounds; ratios taken within each round.", "",
             "| model | stack | workers | store role | events/run | events/s (median) | per round | "
             "scored / events | load before (1 min) | CPU ms/event (workers / store / broker / bench) | "
             "other stacks idle (cores) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for a in doc["archs"]:
        for name, c in a["configs"].items():
            runs = c["runs"]
            cpu = {k: med([sum(v for kk, v in r["cpu_ms_per_event"].items() if kk.startswith(k)) for r in runs])
                   for k in ("worker", "store", "broker", "bench")}
            lines.append(
                f"| {a['arch']} | {name} | {c['workers']} | {'yes' if c['store'] else 'no'} | {a['sizes']['events']} | "
                f"**{f1(c['events_s'])}** | {', '.join(f1(r['events_s']) for r in runs)} | "
                f"{join((sum(r['scored_per_worker']) / r['events'] for r in runs), '.2f')} | "
                f"{join(r['loadavg_before'][0] for r in runs)} | "
                f"{cpu['worker']:.2f} / {cpu['store']:.2f} / {cpu['broker']:.2f} / {cpu['bench']:.2f} | "
                f"{join((r.get('idle_stacks_cores', float('nan')) for r in runs), '.2f')} |")
    lines += ["", "| model | 2 workers / 1 worker (both through the store) | store / lone worker (1 worker) | "
                  "2-worker split of scored events |", "|---|---|---|---|"]
    for a in doc["archs"]:
        splits = "; ".join("/".join(str(int(s)) for s in r["scored_per_worker"]) for r in a["configs"]["store-2"]["runs"])
        lines.append(f"| {a['arch']} | **{a['ratio_2w_1w']:.2f}** (rounds: "
                     f"{join((r['ratio_2w_1w'] for r in a['rounds']), '.2f')}) | **{a['ratio_store_lone']:.2f}** "
                     f"(rounds: {join((r['ratio_store_lone'] for r in a['rounds']), '.2f')}) | {splits} |")
    skipped = [f"{a['arch']}: {s}" for a in doc["archs"] for s in a["skipped"]]
    incidents = [f"{a['arch']} {name} ({i['when']}): {i['error'][:200]}" for a in doc["archs"]
                 for name, c in a["configs"].items() for i in c["incidents"]]
    m = doc["machine"]
    lines += ["", f"Machine: {m['cpu_model'] or m['machine']}, {m['cores_available']}/{m['cpu_count']} cores "
                  f"available, Python {m['python']}; load average (1/5/15 min) {doc['loadavg_start']} at start, "
                  f"{doc['loadavg_end']} at end; runtime {doc['runtime_s']:.0f} s."
              + (f" Skipped: {'; '.join(skipped)}." if skipped else ""), ""]
    if incidents:
        lines += ["Stacks replaced by a fresh one (not measured; see the JSON for the workers' errors):", "",
                  *[f"- {x}" for x in incidents], ""]
    lines += EXPLAIN
    return "\n".join(lines)


EXPLAIN = [
    "What the ratios mean on this machine: it has 2 cores, and the broker, the store role, this",
    "process (publisher and poller) and the workers all run on them. One worker with one torch thread",
    "leaves some of the second core to the rest; a second worker can only add what is left of it, and",
    "it competes with the broker, the store and the first worker for it. So 2 workers / 1 worker is",
    "bounded well below 2 here: it shows that the second worker takes half the partitions and adds",
    "throughput where there is spare CPU (a model whose encoder dominates, ViT-B-32), and how much the",
    "per-event work outside the encoder (decode, Kafka, the HTTP hop to the store) caps it where the",
    "encoder is nearly free (tiny CLIP). On a machine with a core per worker the encoder-bound case",
    "would approach 2. Store / lone is the cost of the store hop for one worker: every insert and",
    "read goes over HTTP (Arrow IPC) to the store process instead of into chDB in the worker. The",
    "machine is shared with other jobs (see the load average per run): compare ratios, which are",
    "measured back to back, rather than absolute rates.",
    "",
    "Scored / events above 1: a worker scored some events more than once. When a backlog drains",
    "slower than the hole healer's 20 s (worker/delivery/commit.py: a commit position that has not",
    "moved for 20 s while the log goes on is taken for a lost record), it re-reads queued records, so",
    "they are scored again (stored rows stay exact: the sinks are idempotent) and the drain slows",
    "further. ViT-B-32 at a few events/s with 90 events queued per partition is that case; the tiny",
    "CLIP drains in seconds. The store's CPU per event is ~50x higher with ViT-B-32 than with the",
    "tiny CLIP although the events are the same: most likely the FID moment states each score batch",
    "rewrites (D + D^2 float64: 2.1 MB at ViT-B-32's D = 512, 33 KB at the tiny CLIP's D = 64), sent",
    "to the store as Arrow and inserted into chDB (inferred from the sizes, not profiled).",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    def sizes(name: str) -> str:
        t, tq, o, oq = SIZES[name]
        return f"(tiny CLIP {t}, --quick {tq}; other --arch {o}, --quick {oq})"

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", action="append", help=f"open_clip architecture, random weights, repeatable "
                                                    f"(default: {' and '.join(ARCHS)})")
    ap.add_argument("--events", type=int, help=f"events per measured run {sizes('events')}")
    ap.add_argument("--warmup", type=int, help=f"unmeasured events after each stack starts {sizes('warmup')}")
    ap.add_argument("--rewarm", type=int, help=f"unmeasured events before each measured run {sizes('rewarm')}")
    ap.add_argument("--rounds", type=int, help=f"rounds (each measures every stack once) {sizes('rounds')}")
    ap.add_argument("--partitions", type=int, default=4, help="input partitions (default 4)")
    ap.add_argument("--batch", type=int, default=32, help="score batch size (default 32)")
    ap.add_argument("--torch-threads", type=int, default=1, help="torch intra-op threads per worker (default 1)")
    ap.add_argument("--poll", type=float, default=0.2, help="seconds between progress polls (default 0.2)")
    ap.add_argument("--budget-s", type=float, help="past this many seconds later rounds are skipped, the first "
                                                   "of each arch kept (default 1200, --quick 300)")
    ap.add_argument("--quick", action="store_true", help="short run: smaller sizes for the options not given")
    ap.add_argument("--from-json", type=Path, metavar="PATH",
                    help="measure nothing: print the report of a stored run and rewrite the .md next to it")
    ap.add_argument("--out", type=Path, help="JSON output, the table next to it as .md "
                                             "(default bench/results/scale_out.json, --quick scale_out_quick.json)")
    args = ap.parse_args(argv)
    args.arch = args.arch or list(ARCHS)
    if args.partitions < 2:
        ap.error("--partitions must be at least 2, so both workers get work")
    if args.budget_s is None:
        args.budget_s = 300.0 if args.quick else 1200.0
    if args.out is None:
        args.out = scoring.RESULTS.with_name("scale_out_quick.json" if args.quick else "scale_out.json")
    return args


def main() -> None:
    args = parse_args()
    if args.from_json:
        text = report(json.loads(args.from_json.read_text()))
        print(text)
        args.from_json.with_suffix(".md").write_text(text.rstrip() + "\n")
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the finally blocks stop the stacks
    t0 = time.perf_counter()
    deadline = time.monotonic() + args.budget_s
    doc: dict[str, Any] = {"bench": "scale_out", "args": {k: str(v) for k, v in vars(args).items()},
                           "partitions": args.partitions, "batch": args.batch, "torch_threads": args.torch_threads,
                           "machine": machine_info(), "loadavg_start": loadavg(), "archs": []}
    for arch in args.arch:
        doc["archs"].append(bench_arch(arch, args, deadline))
    doc["loadavg_end"] = loadavg()
    doc["runtime_s"] = time.perf_counter() - t0
    text = report(doc)
    print(text)
    path = write_results("scale_out", doc, text, args.out)
    log(f"wrote {path} and {path.with_suffix('.md')}")


if __name__ == "__main__":
    main()
