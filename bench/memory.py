"""Worker memory: resident set size after 1k, 10k, 100k, 250k and 400k events. It must stay flat.

The worker keeps bounded caches that fill with traffic: the gate's verdicts (100k source
offsets) and first copies (200k job ids, for duplicate detection), so RSS grows until about
200k events and must be flat after; the 250k and 400k checkpoints show whether it is.

The real worker (``bench/_worker.py`` around ``worker.main.run_worker``) on the embedded
noida broker and chDB, fed the metadata-path events of ``bench/metadata_path.py`` (valid
JobCompleted records with a 1x1 WebP, event time at ``--event-rate``/s, default 20,000/s: the
keys of the live table are then a fixed, small set (model x niche x partition x one or two
5-minute buckets), so any growth is per-event state, not new keys). By default the worker runs
with ``SENTINEL_SCORE_ENABLED=0`` (metadata path: the ``jobs`` agent archives and tallies but
does not score; CLIP on 100k events would take far longer than the rest); ``--with-score``
scores too.

After each checkpoint (cumulative events published, all tallied and archived, then 1 s of
rest) it reads ``/proc/<worker pid>/status`` (VmRSS, RssAnon, RssFile, VmHWM) and asks the
worker (``/bench/memory/``) for gc-collected Python object counts and the live table's size.
While events drain, VmRSS is sampled every ``--poll`` s (peak reported). Ratios
RSS between consecutive checkpoints are printed, and the growth in MB per 10k events; "flat" is
the last checkpoint's RSS within 10% of the one before.

In-process, it also measures what one live-table value costs in memory when its key is
saturated (500-centroid digests, as every key is at 20k events/s): the dict the worker keeps
(``LiveStats.to_dict()`` inside ``{"bucket_s", "stats"}``: the digests as base64 text) vs the
same digests as raw fastdigest bytes,
and what that means for a table of a day or two of buckets.

Usage::

    python bench/memory.py [--quick] [--checkpoints 1000,10000,100000,250000,400000] [--with-score]

Writes ``bench/results/memory.json`` and ``.md`` and prints the table.
"""

from __future__ import annotations

import argparse
import base64
import shutil
import signal
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (BenchStack, EventMaker, get_json, loadavg, log, machine_info, machine_line,  # noqa: E402
                     prefill, status_kb, write_results)

from sentinel.latency import PARTS, LatencySketch, LiveStats, latency_parts  # noqa: E402

FLAT = 1.10  # "flat": RSS of the last checkpoint within 10% of the one before


def value_memory(n_values: int = 20) -> dict[str, Any]:
    """Bytes of Python heap per live-table value of a saturated key, as the worker holds it."""
    mk = EventMaker(seed=3, event_rate=20000)
    state = LiveStats()
    for i in range(3000):
        state.update(partition=0, offset=i, parts_ms=latency_parts(mk.event(i)), gpu_seconds=1.0, cost_usd=0.01)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        values = [{"bucket_s": 300, "stats": state.to_dict()} for _ in range(n_values)]
        as_dicts = (tracemalloc.get_traced_memory()[0] - base) / n_values
        base = tracemalloc.get_traced_memory()[0]
        blobs = [{p: base64.b64decode(state.latency[p].to_b64()) for p in PARTS} for _ in range(n_values)]
        as_bytes = (tracemalloc.get_traced_memory()[0] - base) / n_values
        base = tracemalloc.get_traced_memory()[0]
        objects = [LiveStats.from_dict(state.to_dict()) for _ in range(n_values)]
        as_objects = (tracemalloc.get_traced_memory()[0] - base) / n_values  # Rust heap not traced
    finally:
        tracemalloc.stop()
    del values, blobs, objects
    return {"centroids_per_digest": LatencySketch.from_dict(state.latency["e2e"].to_b64()).digest.n_centroids, "dict_value_bytes": as_dicts,
            "bytes_value_bytes": as_bytes, "liveStats_python_bytes": as_objects}


class RssSampler:
    def __init__(self, pid: int, interval: float) -> None:
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, int]] = []
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        t0 = time.time()
        while not self.stop_flag.wait(self.interval):
            try:
                self.samples.append((round(time.time() - t0, 2), status_kb(self.pid)["VmRSS"]))
            except (OSError, KeyError):
                return

    def stop(self) -> list[tuple[float, int]]:
        self.stop_flag.set()
        self.thread.join(2)
        return self.samples


def run(args: argparse.Namespace, root: Path, doc: dict[str, Any]) -> None:
    stack = BenchStack(root / "stack", score_enabled=args.with_score, partitions=args.partitions)
    # disabled_agents: what older result files recorded (the score agent removed); same meaning
    out = doc["stack"] = {"score_enabled": args.with_score, "disabled_agents": None if args.with_score else "score",
                          "event_rate": args.event_rate,
                          "partitions": args.partitions, "checkpoints": []}
    stack.start()
    try:
        pid = stack.pid
        maker = EventMaker(seed=args.seed, event_rate=args.event_rate)
        time.sleep(args.rest)
        base = {"events": 0, "status_kb": status_kb(pid), "python": get_json(f"{stack.url}/bench/memory/", 120),
                "loadavg": loadavg()}
        out["baseline"] = base
        log(f"worker pid {pid}: VmRSS {base['status_kb']['VmRSS'] / 1024:.0f} MB before any event")
        done_events = 0
        p0 = stack.progress()
        for target in args.checkpoints:
            n = target - done_events
            t0 = time.time()
            sampler = RssSampler(pid, args.poll)
            for start in range(0, n, args.chunk):  # publish in chunks: bounded memory here
                prefill(stack.bootstrap, maker.take(min(args.chunk, n - start)))
            want_t, want_j = p0["tallied"] + target, p0["rows"].get("sentinel.jobs", 0) + target
            p = stack.wait_for(lambda p: p["tallied"] >= want_t and p["rows"].get("sentinel.jobs", 0) >= want_j,
                               args.timeout, poll_s=0.5)
            if args.with_score:
                stack.wait_for(lambda p: p["rows"].get("sentinel.scores", 0) >= p0["rows"].get("sentinel.scores", 0)
                               + target, args.timeout, poll_s=0.5)
            elapsed = time.time() - t0
            time.sleep(args.rest)
            samples = sampler.stop()
            st = status_kb(pid)
            py = get_json(f"{stack.url}/bench/memory/", 120)
            done_events = target
            cp = {"events": target, "status_kb": st, "python": py, "drain_s": elapsed, "events_s": n / elapsed,
                  "peak_rss_kb_while_draining": max((s[1] for s in samples), default=None),
                  "rss_timeline_kb": samples[:: max(1, len(samples) // 60)], "live_keys": p["live_keys"],
                  "loadavg": loadavg()}
            out["checkpoints"].append(cp)
            log(f"  {target:>7,} events: VmRSS {st['VmRSS'] / 1024:,.0f} MB (anon {st.get('RssAnon', 0) / 1024:,.0f}, "
                f"peak while draining {(cp['peak_rss_kb_while_draining'] or 0) / 1024:,.0f}), {py['gc_objects']:,} "
                f"Python objects, {py['live_keys']} live keys ({py['live_json_bytes'] / 1e6:.1f} MB as JSON); "
                f"{cp['events_s']:,.0f} events/s; load {cp['loadavg'][0]:.1f}")
    finally:
        stack.stop()


def ratios(doc: dict[str, Any]) -> dict[str, Any]:
    cps = {c["events"]: c for c in doc["stack"]["checkpoints"]}
    ks = sorted(cps)
    out: dict[str, Any] = {}
    for a, b in zip(ks, ks[1:]):
        ra, rb = cps[a]["status_kb"]["VmRSS"], cps[b]["status_kb"]["VmRSS"]
        out[f"rss_{b}_over_{a}"] = rb / ra
        out[f"mb_per_10k_events_{a}_to_{b}"] = (rb - ra) / 1024 / ((b - a) / 10_000)
        out[f"objects_{b}_over_{a}"] = cps[b]["python"]["gc_objects"] / cps[a]["python"]["gc_objects"]
    if len(ks) >= 2:
        out["flat"] = out[f"rss_{ks[-1]}_over_{ks[-2]}"] <= FLAT
        a, b = cps[ks[-2]]["python"].get("types", {}), cps[ks[-1]]["python"].get("types", {})
        grew = {t: b.get(t, 0) - a.get(t, 0) for t in set(a) | set(b)}
        out["object_growth_last_step"] = dict(sorted(((t, n) for t, n in grew.items() if n > 0), key=lambda x: -x[1])[:8])
    return out


def report(doc: dict[str, Any]) -> str:
    st = doc["stack"]
    base = st["baseline"]
    scoring = st.get("score_enabled", not st["disabled_agents"])
    L = [f"### Worker memory ({'scoring on' if scoring else 'scoring off'}), metadata-path "
         f"events, event time {st['event_rate']:,.0f}/s, {st['partitions']} partitions", "",
         "| events | VmRSS MB | RssAnon MB | peak while draining MB | Python objects (after gc) | live keys | live table as JSON MB "
         "| drain events/s | load |",
         "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
         f"| 0 | {base['status_kb']['VmRSS'] / 1024:,.0f} | {base['status_kb'].get('RssAnon', 0) / 1024:,.0f} | | "
         f"{base['python']['gc_objects']:,} | {base['python']['live_keys']} | {base['python']['live_json_bytes'] / 1e6:.2f} | "
         f"| {base['loadavg'][0]:.1f} |"]
    for c in st["checkpoints"]:
        s = c["status_kb"]
        L.append(f"| {c['events']:,} | {s['VmRSS'] / 1024:,.0f} | {s.get('RssAnon', 0) / 1024:,.0f} "
                 f"| {(c['peak_rss_kb_while_draining'] or 0) / 1024:,.0f} | {c['python']['gc_objects']:,} | {c['live_keys']} "
                 f"| {c['python']['live_json_bytes'] / 1e6:.2f} | {c['events_s']:,.0f} | {c['loadavg'][0]:.1f} |")
    r = doc["ratios"]
    L += ["", "Ratios: " + ", ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in r.items() if k.startswith("rss_"))
          + "; growth " + ", ".join(f"{v:+.1f} MB per 10k events ({k.split('events_')[1].replace('_', ' ')})"
                                    for k, v in r.items() if k.startswith("mb_per"))
          + f". Flat (RSS of the last checkpoint within {FLAT - 1:.0%} of the one before): "
          f"{'yes' if r.get('flat') else 'NO'}."]
    if r.get("object_growth_last_step"):
        L += ["", "Python objects that grew over the last step (gc-tracked, by type): "
              + ", ".join(f"{t} +{n:,}" for t, n in r["object_growth_last_step"].items()) + "."]
    v = doc["value_memory"]
    L += ["", f"One live-table value of a saturated key ({v['centroids_per_digest']} centroids per digest, 4 digests), "
          f"Python heap: {v['dict_value_bytes'] / 1024:,.0f} KiB as the worker stores it (LiveStats.to_dict: "
          f"the digests as base64 text), {v['bytes_value_bytes'] / 1024:,.0f} KiB as raw fastdigest bytes. A table holding two "
          f"days of 5-minute buckets for 10 models x 3 niches x 4 partitions (69,120 keys) would need "
          f"{69120 * v['dict_value_bytes'] / 2**30:,.1f} GiB vs {69120 * v['bytes_value_bytes'] / 2**30:,.1f} GiB."]
    L += ["", machine_line(doc) + f" Bench took {doc['runtime_s']:.0f} s."]
    return "\n".join(L)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="checkpoints 1k, 5k, 20k")
    ap.add_argument("--checkpoints", default="1000,10000,100000,250000,400000", help="cumulative event counts")
    ap.add_argument("--event-rate", type=float, default=20_000.0, help="event-time rate of the events (per second)")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--with-score", action="store_true", help="score too (CLIP on every 1x1 image; default SENTINEL_SCORE_ENABLED=0)")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=20_000, help="events published per producer run")
    ap.add_argument("--rest", type=float, default=1.0, help="seconds of rest before each reading")
    ap.add_argument("--poll", type=float, default=0.5, help="RSS sampling interval while draining")
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.quick:
        args.checkpoints = "1000,5000,20000"
    args.checkpoints = sorted(int(x) for x in str(args.checkpoints).split(","))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t0 = time.perf_counter()
    doc: dict[str, Any] = {"bench": "memory", "args": {k: str(v) for k, v in vars(args).items()},
                           "machine": machine_info(), "loadavg_start": loadavg()}
    doc["value_memory"] = value_memory()
    root = Path(tempfile.mkdtemp(prefix="sentinel-bench-memory-"))
    try:
        run(args, root, doc)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    doc["ratios"] = ratios(doc)
    doc["loadavg_end"] = loadavg()
    doc["runtime_s"] = time.perf_counter() - t0
    text = report(doc)
    print(text)
    path = write_results("memory", doc, text, args.out)
    log(f"wrote {path} and {path.with_suffix('.md')}")


if __name__ == "__main__":
    main()
