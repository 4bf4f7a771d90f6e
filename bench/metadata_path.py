"""Metadata path: how fast one worker tallies, sketches and archives events that carry no image
to speak of, compared with a plain aiokafka consume loop on the same topic.

Targets (issue #9): >= 20,000 events/s per worker, and >= 0.5 of the raw consume rate.

What runs:

* **worker**: the real worker (``worker.main.run_worker`` via ``bench/_worker.py``) on the
  embedded noida broker and chDB, with scoring off (``SENTINEL_SCORE_ENABLED=0``): a
  metadata-path worker. The one ``jobs`` agent on ``jobs.completed`` screens each batch of
  ``sink_batch_size`` (triage + gate) and hands it to the archive stage (Arrow batches into
  ``sentinel.jobs`` + ``sentinel.job_images``) and the tally stage (per-event tallies and four
  t-digests per model|niche|bucket|partition key in the changelog-backed ``live_stats`` table).
  Events are valid JobCompleted records with a 1x1 WebP (44 bytes; validation needs an image
  that decodes, so an empty one would be dead-lettered), event time paced at ``--event-rate``
  per second (default 20,000/s, the target: one worker's keys are then few and hot, as in
  production at that rate).
* Each round: the worker is frozen (SIGSTOP), ``--events`` records are published (pre-encoded,
  batched producer), the worker is thawed and timed until the last of them is tallied *and*
  inserted into ``sentinel.jobs`` (times stamped inside the worker by ``bench/_worker.py``).
  Next to it, on exactly the same offsets: **raw** = a plain ``AIOKafkaConsumer.getmany`` loop
  that touches each record's value; **raw+core** = the same loop handing batches of
  ``sink_batch_size`` records to the worker's own stages without Faust, in one thread:
  ``worker.stages.triage.Triage`` (decode + checks, once per offset), ``Gate.judge`` (image
  decode, content hash, verdict; no stored copies to look up), ``TallyStage`` on a plain dict
  table (decoded ``LiveStats`` kept per key; per batch one ``to_dict`` plus the changelog's
  JSON per changed key) and the archive's ``job_rows`` + ``image_rows``; no chDB insert, no
  changelog produce. Rounds alternate whether raw runs before or after the worker; ratios are
  taken within a round; medians are reported.
* Where the time goes: worker CPU per thread (/proc), the time spent inside chDB inserts, the
  CPU of an idle worker, per-event costs measured in isolation (including the tally update as a
  function of how full the key's digests are), and one extra
  round under cProfile (event-loop thread; not counted in the rates) with its top functions.

Usage::

    python bench/metadata_path.py [--quick] [--events 10000] [--rounds 3] [--warmup 10000]

Writes ``bench/results/metadata_path.json`` and ``.md`` and prints the table.
"""

from __future__ import annotations

import argparse
import pstats
import shutil
import signal
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (BenchStack, EventMaker, cpu_delta, end_offsets, loadavg, log, machine_info,  # noqa: E402
                     machine_line, prefill, raw_consume, write_results)

from faust.serializers.codecs import get_codec  # noqa: E402

from config.settings import load_settings  # noqa: E402
from contracts.codec import AvroCodec, content_hash  # noqa: E402
from sentinel.buckets import live_key  # noqa: E402
from sentinel.latency import LatencySketch, LiveStats, latency_parts  # noqa: E402
from sentinel.validation import check_job  # noqa: E402
from warehouse import rows  # noqa: E402
from worker import codecs  # noqa: E402
from worker.stages.gate import Catalog, Gate, check_images  # noqa: E402
from worker.stages.tally import TallyStage  # noqa: E402
from worker.stages.triage import Triage  # noqa: E402

TARGET_EVENTS_S = 20_000
TARGET_RATIO = 0.5
FAUST_JSON = get_codec("json")  # what Faust encodes table values with for the changelog


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


# --------------------------------------------------------------------------- the core loop


class _Event:
    """What the stages read of a Faust event (weak-referenceable: the tally makes it current)."""

    __slots__ = ("value", "key", "message", "__weakref__")

    def __init__(self, rec: Any) -> None:
        self.value, self.key = rec.value, rec.key
        self.message = types.SimpleNamespace(topic=rec.topic, partition=rec.partition, offset=rec.offset)


class ChangelogTable(dict):
    """A dict standing in for the ``live_stats`` table: each write costs Faust's JSON of the value
    (what the changelog carries), counted, but is not produced anywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.changelog_bytes = 0

    def __setitem__(self, key: str, value: Any) -> None:
        self.changelog_bytes += len(FAUST_JSON.dumps(value))
        super().__setitem__(key, value)


class Core:
    """The worker's per-batch Python work for the metadata path, without Faust (one thread), with
    the worker's own stages: ``Triage`` once per offset, ``Gate.judge`` (image decode, content
    hash, verdict; nothing stored to look up), ``TallyStage`` on a :class:`ChangelogTable`
    (decoded states kept per key, one changelog value per changed key per batch), archive rows;
    batches of ``sink_batch_size`` as the jobs agent takes them."""

    def __init__(self, settings: Any) -> None:
        pricing = settings.pricing()
        self.batch_size = settings.sink_batch_size
        self.triage = Triage(pricing, settings.max_image_bytes, Catalog.from_settings(settings))
        self.gate = Gate(lambda ids: {})
        self.table = ChangelogTable()
        self.tally = TallyStage(self.table, pricing, settings.live_bucket_s, settings.live_retention_s,
                                lambda partition: None)
        self.pending: list[_Event] = []

    @property
    def changelog_bytes(self) -> int:
        return self.table.changelog_bytes

    def handle(self, rec: Any) -> None:
        self.pending.append(_Event(rec))
        if len(self.pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        events, self.pending = self.pending, []
        if not events:
            return
        accepted, _ = self.triage(events)
        pixels: dict[tuple[int, int], Any] = {}
        verdicts = self.gate.judge([(a.partition, a.offset, a.event, a.content_hash()) for a in accepted], pixels)
        kept = [a for a, v in zip(accepted, verdicts) if v is not None and v.kind == "ok"]
        rows.job_rows([(a.event, a.partition, a.offset, a.content_hash()) for a in kept])
        rows.image_rows([a.event for a in kept])
        self.tally(kept, {(ev.message.partition, ev.message.offset): ev for ev in events})


# --------------------------------------------------------------------------- per-event costs in isolation


def timeit(fn: Callable[[], Any], n: int, repeat: int = 3) -> float:
    """µs per call (best of ``repeat`` loops of ``n``)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - t0)
    return best / n * 1e6


def filled_state(n_events: int) -> LiveStats:
    mk = EventMaker(seed=99, event_rate=20000)
    state = LiveStats()
    for i in range(n_events):
        state.update(partition=0, offset=i, parts_ms=latency_parts(mk.event(i)), gpu_seconds=1.0, cost_usd=0.01)
    return state


def bench_components(settings: Any) -> dict[str, Any]:
    mk = EventMaker(seed=5, event_rate=20000)
    event = mk.event(7)
    raw = AvroCodec("JobCompleted").encode(event)
    pricing = settings.pricing()
    out: dict[str, Any] = {}
    n = 2000
    out["avro_decode_JobCompleted"] = {"us": timeit(lambda: codecs.decode("JobCompleted", raw), n), "per_event": 1,
                                       "where": "triage (worker.stages.triage), once per offset"}
    out["check_job"] = {"us": timeit(lambda: check_job(event, max_image_bytes=settings.max_image_bytes), n),
                        "per_event": 1, "where": "triage, once per offset"}
    out["image_decode_1x1_webp"] = {"us": timeit(lambda: check_images(event), n), "per_event": 1,
                                    "where": "the gate: check_images once per offset (the scorer would reuse the pixels)"}
    out["content_hash"] = {"us": timeit(lambda: content_hash(event), n), "per_event": 1,
                           "where": "duplicate detection, once per offset (Accepted.content_hash: the gate and the "
                                    "jobs rows share it)"}
    out["key_cost_latency_parts"] = {
        "us": timeit(lambda: (live_key(event, 1, 300), latency_parts(event),
                              pricing.job_cost(provider=event["provider"], gpu_type=event["gpu_type"],
                                               gpu_seconds=event["gpu_seconds"], api_cost_usd=None)), n),
        "per_event": 1, "where": "tally stage: live_key, latency_parts, job_cost"}
    batch = [mk.event(i) for i in range(500)]
    out["archive_rows"] = {"us": timeit(lambda: (rows.job_rows([(e, 0, i) for i, e in enumerate(batch)]),
                                                 rows.image_rows(batch)), 5) / 500,
                           "per_event": 1, "where": "archive stage: job_rows + image_rows, batches of 500"}
    # the tally update, by how many events the key has seen
    fill: dict[str, Any] = {}
    parts = latency_parts(event)
    for k in (1, 10, 100, 1000, 5000):
        state = filled_state(k)
        stored = {"bucket_s": 300, "stats": state.to_dict()}
        offset = [10**9]

        def current() -> None:
            s = LiveStats.from_dict(stored["stats"])
            offset[0] += 1
            s.update(partition=0, offset=offset[0], parts_ms=parts, gpu_seconds=1.0, cost_usd=0.01)
            FAUST_JSON.dumps({"bucket_s": 300, "stats": s.to_dict()})

        def from_dict_only() -> None:
            LiveStats.from_dict(stored["stats"])

        def to_dict_only() -> None:
            state.to_dict()

        def json_only() -> None:
            FAUST_JSON.dumps(stored)

        cached = filled_state(k)

        def cached_update() -> None:  # proposal A: decoded state kept in memory; no from_dict
            offset[0] += 1
            cached.update(partition=0, offset=offset[0], parts_ms=parts, gpu_seconds=1.0, cost_usd=0.01)

        reps = 300 if k >= 100 else 2000
        fill[str(k)] = {
            # from a copy: reading .digest would turn a small sketch (k < 64) into a full one
            "centroids_per_digest": LatencySketch.from_dict(state.latency["e2e"].to_b64()).digest.n_centroids,
            "changelog_value_bytes": len(FAUST_JSON.dumps(stored)),
            "current_us": timeit(current, reps),
            "from_dict_us": timeit(from_dict_only, reps),
            "to_dict_us": timeit(to_dict_only, reps),
            "json_us": timeit(json_only, reps),
            "cached_update_us": timeit(cached_update, reps * 5),
        }
        log(f"  tally update, key with {k} events: {fill[str(k)]['current_us']:.0f} µs "
            f"(changelog value {fill[str(k)]['changelog_value_bytes']:,} bytes)")
    out["tally_by_fill"] = fill
    return out


# --------------------------------------------------------------------------- the stack rounds


def idle_cpu(stack: BenchStack, seconds: float) -> dict[str, Any]:
    c0 = stack.cpu()
    time.sleep(seconds)
    d = cpu_delta(c0, stack.cpu(), 0)
    return {"seconds": d["wall_s"], "worker_cores": d["worker_cores"],
            "threads_cores": {k: round(v / d["wall_s"], 3) for k, v in d["worker_threads_cpu_s"].items()},
            "broker_cores": d["broker_cpu_s"] / d["wall_s"]}


def drained(p0: dict[str, Any], n: int) -> Callable[[dict[str, Any]], bool]:
    t0, j0 = p0["tallied"], p0["rows"].get("sentinel.jobs", 0)
    return lambda p: p["tallied"] >= t0 + n and p["rows"].get("sentinel.jobs", 0) >= j0 + n


def worker_round(stack: BenchStack, items: list[tuple[bytes, bytes]], before_thaw: Callable[..., Any] | None,
                 timeout: float) -> dict[str, Any]:
    n = len(items)
    p0 = stack.progress()
    stack.freeze()
    try:
        start = end_offsets(stack.bootstrap)
        publish_s = prefill(stack.bootstrap, items)
        end = end_offsets(stack.bootstrap)
        extra = before_thaw(start, end) if before_thaw else None
    finally:
        c0 = stack.cpu()
        t0 = time.time()
        stack.thaw()
    p = stack.wait_for(drained(p0, n), timeout)
    c1 = stack.cpu()
    tally_done = p["tally_last"]
    archive_done = p["insert_last"]["sentinel.jobs"]
    done = max(tally_done, archive_done)
    ins = {t: p["insert_s"].get(t, 0.0) - p0["insert_s"].get(t, 0.0) for t in ("sentinel.jobs", "sentinel.job_images")}
    cpu = cpu_delta(c0, c1, n)
    return {
        "events": n, "publish_s": publish_s, "start_offsets": start, "end_offsets": end,
        "elapsed_s": done - t0, "events_s": n / (done - t0),
        "tally_events_s": n / (tally_done - t0), "archive_events_s": n / (archive_done - t0),
        "inserts": {t: p["inserts"].get(t, 0) - p0["inserts"].get(t, 0) for t in ins},
        "insert_s": ins, "insert_share_of_elapsed": sum(ins.values()) / (done - t0),
        "live_keys": p["live_keys"], "events_per_key": p["tallied"] / max(p["live_keys"], 1),
        "cpu": cpu, "raw_before": extra,
    }


def raw_passes(stack: BenchStack, settings: Any, start: dict[int, int], end: dict[int, int],
               core_events: int) -> dict[str, Any]:
    raw = raw_consume(stack.bootstrap, start, end)
    # raw+core on the first `core_events` of each round (the core loop is ~100x slower than raw)
    share = min(1.0, core_events / max(raw["events"], 1))
    cut = {p: start[p] + int((end[p] - start[p]) * share) for p in end}
    out = {"raw": raw}
    for mode in ("current",):
        core = Core(settings)
        res = raw_consume(stack.bootstrap, start, cut, handle=core.handle)
        t0 = time.perf_counter()
        core.flush()
        res["wall_s"] += time.perf_counter() - t0
        res["events_s"] = res["events"] / res["wall_s"]
        res["changelog_bytes_per_event"] = core.changelog_bytes / max(res["events"], 1)
        out[f"core_{mode}"] = res
    return out


def run_stack(args: argparse.Namespace, root: Path, doc: dict[str, Any]) -> None:
    stack = BenchStack(root / "stack", score_enabled=False, partitions=args.partitions)
    settings = load_settings(env={})
    out = doc["stack"] = {"settings": {"partitions": args.partitions, "event_rate": args.event_rate,
                                       "sink_batch_size": stack.settings.sink_batch_size,
                                       "sink_batch_wait_s": stack.settings.sink_batch_wait_s,
                                       "live_bucket_s": stack.settings.live_bucket_s,
                                       # disabled_agents: what older result files recorded, same meaning
                                       "score_enabled": False, "disabled_agents": "score"}, "rounds": []}
    t = time.perf_counter()
    stack.start()
    try:
        out["start_s"] = time.perf_counter() - t
        out["agents"] = stack.progress()["agents"]
        log(f"worker up in {out['start_s']:.1f}s (pid {stack.pid}), agents: {', '.join(out['agents'])}")
        out["idle"] = idle_cpu(stack, args.idle_seconds)
        log(f"idle worker: {out['idle']['worker_cores']:.2f} cores {out['idle']['threads_cores']}")
        maker = EventMaker(seed=args.seed, event_rate=args.event_rate)
        if args.warmup:
            log(f"warm-up: {args.warmup} events ...")
            w = worker_round(stack, maker.take(args.warmup), None, args.timeout)
            out["warmup"] = {k: v for k, v in w.items() if k not in ("start_offsets", "end_offsets")}
            log(f"  warm-up: {w['events_s']:.0f} events/s, {w['events_per_key']:.0f} events per key")
        for r in range(args.rounds):
            items = maker.take(args.events)
            raw_first = r % 2 == 1
            la0 = loadavg()
            res = worker_round(stack, items, (lambda s, e: raw_consume(stack.bootstrap, s, e)) if raw_first else None,
                               args.timeout)
            # raw and raw+core on the same offsets (worker frozen, so it does not compete)
            stack.freeze()
            try:
                passes = raw_passes(stack, settings, res["start_offsets"], res["end_offsets"], args.core_events)
            finally:
                stack.thaw()
            if raw_first:
                passes["raw_after"] = passes["raw"]
                passes["raw"] = res["raw_before"]
            res.pop("raw_before")
            res.update(passes)
            res["raw_first"] = raw_first
            res["ratio"] = res["events_s"] / res["raw"]["events_s"]
            res["ratio_to_core"] = res["events_s"] / res["core_current"]["events_s"]
            res["loadavg_before"], res["loadavg_after"] = la0, loadavg()
            out["rounds"].append(res)
            log(f"  round {r + 1}/{args.rounds}: worker {res['events_s']:,.0f} events/s (tally "
                f"{res['tally_events_s']:,.0f}, archive {res['archive_events_s']:,.0f}), raw aiokafka "
                f"{res['raw']['events_s']:,.0f}/s -> ratio {res['ratio']:.4f}; raw+core (no Faust) "
                f"{res['core_current']['events_s']:,.0f}/s; "
                f"{res['events_per_key']:.0f} events/key; worker {res['cpu']['worker_cores']:.2f} cores; "
                f"load {la0[0]:.1f}->{res['loadavg_after'][0]:.1f}")
            # wait until the worker answers again (a long freeze may make it rejoin its group)
            stack.wait_ready(60)
        if args.profile:
            log("profiled round (cProfile on the event-loop thread; not counted) ...")
            pstats_path = root / "worker.pstats"
            stack.control("profile", "start")
            if args.sample:
                stack.control("sample", "start", interval=0.005)
            pr = worker_round(stack, maker.take(args.profile_events), None, args.timeout)
            sampled = stack.control("sample", "stop", top=20) if args.sample else None
            stack.control("profile", "stop", out=str(pstats_path))
            out["profile"] = summarize_profile(pstats_path, pr)
            out["profile"]["sampled"] = sampled
            if args.keep_pstats:
                shutil.copy(pstats_path, args.keep_pstats)
    finally:
        stack.stop()


def summarize_profile(path: Path, pr: dict[str, Any], top: int = 25) -> dict[str, Any]:
    st = pstats.Stats(str(path))
    total = st.total_tt
    rows_ = []
    for (file, line, fn), (cc, nc, tt, ct, _) in st.stats.items():
        rows_.append({"function": f"{fn} ({Path(file).name}:{line})" if line else fn, "calls": nc,
                      "tottime_s": tt, "cumtime_s": ct})
    idle = sum(r["tottime_s"] for r in rows_ if "poll' of 'select.epoll" in r["function"])
    busy = total - idle
    by_tt = sorted((r for r in rows_ if "poll' of 'select.epoll" not in r["function"]),
                   key=lambda r: -r["tottime_s"])[:top]
    for r in by_tt:
        r["share_of_busy"] = r["tottime_s"] / busy if busy else float("nan")
        r["us_per_event"] = r["tottime_s"] / pr["events"] * 1e6
    wanted = ("__call__ (jobs.py", "deliver (jobs.py", "__call__ (screen.py", "__call__ (triage.py",
              "_apply (tally.py", "__call__ (sinks.py", "from_dict (latency.py", "to_dict (latency.py",
              "dumps (json.py", "__setitem__", "send_soon", "_send_produce_req", "on_message (conductor.py",
              "_c_aiter", "take_events", "job_rows", "image_rows", "decode (codec.py", "decode_image (validation.py")
    cum = sorted((r for r in rows_ if any(w in r["function"] for w in wanted)), key=lambda r: -r["cumtime_s"])
    return {"events": pr["events"], "events_s_under_profiler": pr["events_s"], "total_s": total, "idle_epoll_s": idle,
            "busy_s": busy, "top_tottime": by_tt,
            "cumulative": [{**r, "us_per_event": r["cumtime_s"] / pr["events"] * 1e6} for r in cum[:20]]}


# --------------------------------------------------------------------------- report


def report(doc: dict[str, Any]) -> str:
    st = doc.get("stack", {})
    rs = st.get("rounds", [])
    L: list[str] = []
    if rs:
        w, raw = med([r["events_s"] for r in rs]), med([r["raw"]["events_s"] for r in rs])
        ratio = med([r["ratio"] for r in rs])
        core = med([r["core_current"]["events_s"] for r in rs])
        L += [f"### Metadata path: one worker (scoring off), 1x1 images, {st['settings']['partitions']} partitions, "
              f"event time {st['settings']['event_rate']:,}/s",
              "",
              "| path | events/s (median) | ratio to raw aiokafka | target |",
              "|---|---:|---:|---|",
              f"| raw aiokafka consume loop (same topic, same offsets) | {raw:,.0f} | 1.00 | |",
              f"| worker: tally + sketches + archive to chDB, publish -> last tallied and stored | {w:,.0f} "
              f"| {ratio:.4f} | >= {TARGET_EVENTS_S:,}/s and >= {TARGET_RATIO}: "
              f"{'met' if w >= TARGET_EVENTS_S and ratio >= TARGET_RATIO else 'NOT met'} ({w / TARGET_EVENTS_S:.3f} of the rate) |",
              f"| worker, tallies done | {med([r['tally_events_s'] for r in rs]):,.0f} | "
              f"{med([r['tally_events_s'] / r['raw']['events_s'] for r in rs]):.4f} | |",
              f"| worker, archive done | {med([r['archive_events_s'] for r in rs]):,.0f} | "
              f"{med([r['archive_events_s'] / r['raw']['events_s'] for r in rs]):.4f} | |",
              f"| raw + the worker's stages, no Faust (1 thread) | {core:,.0f} | {core / raw:.4f} | |",
              "",
              "| round | events | worker events/s | raw events/s | ratio | raw+core | events/key | worker cores (event loop) "
              "| worker CPU µs/event | broker CPU µs/event | chDB insert share | load before -> after |",
              "|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|"]
        for i, r in enumerate(rs):
            c = r["cpu"]
            L.append(f"| {i + 1}{' (raw first)' if r['raw_first'] else ''} | {r['events']:,} | {r['events_s']:,.0f} "
                     f"| {r['raw']['events_s']:,.0f} | {r['ratio']:.4f} | {r['core_current']['events_s']:,.0f} "
                     f"| {r['events_per_key']:.0f} | {c['worker_cores']:.2f} ({c['worker_event_loop_cpu_s'] / c['wall_s']:.2f}) "
                     f"| {c['worker_cpu_us_per_event']:,.0f} | {c['broker_cpu_us_per_event']:,.0f} "
                     f"| {r['insert_share_of_elapsed']:.1%} | {r['loadavg_before'][0]:.1f} -> {r['loadavg_after'][0]:.1f} |")
        last = rs[-1]["cpu"]["worker_threads_cpu_s"]
        idle = st.get("idle", {})
        L += ["", f"Worker CPU by thread in the last round (s): {last}. Idle worker (no events): "
              f"{idle.get('worker_cores', float('nan')):.2f} cores {idle.get('threads_cores')} — noida answers "
              f"empty fetches at once; the worker's fetcher waits up to 20 ms after one "
              f"(worker.delivery.overrides.waiting_after_empty; without it an idle worker spun ~0.9 cores)."]
    comp = doc["components"]
    L += ["", "Per-event costs in isolation (bench process, µs, best of 3):", "",
          "| work | µs/call | × per event | µs/event | where |", "|---|---:|---:|---:|---|"]
    total = 0.0
    for name, c in comp.items():
        if name == "tally_by_fill":
            continue
        total += c["us"] * c["per_event"]
        L.append(f"| {name} | {c['us']:.1f} | {c['per_event']} | {c['us'] * c['per_event']:.1f} | {c['where']} |")
    fill = comp["tally_by_fill"]
    L += [f"| sum without the tally update | | | {total:.1f} | |", "",
          "Tally update, by how many events the key already holds. Round trip = LiveStats.from_dict + update + "
          "to_dict + Faust's JSON (per event before the tally kept decoded states; now only on a cache miss, and "
          "to_dict + JSON once per changed key per batch); cached update = what the tally stage does per event now:", "",
          "| events in key | centroids/digest | changelog value bytes | round trip µs | from_dict | to_dict | JSON "
          "| cached update µs |",
          "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for k, f in fill.items():
        L.append(f"| {int(k):,} | {f['centroids_per_digest']} | {f['changelog_value_bytes']:,} | {f['current_us']:,.0f} "
                 f"| {f['from_dict_us']:,.0f} | {f['to_dict_us']:,.0f} | {f['json_us']:,.0f} | {f['cached_update_us']:.1f} |")
    prof = st.get("profile")
    if prof:
        L += ["", f"cProfile of the event-loop thread, one round of {prof['events']:,} events "
              f"({prof['events_s_under_profiler']:,.0f} events/s under the profiler; busy {prof['busy_s']:.1f} s, "
              f"idle in epoll {prof['idle_epoll_s']:.1f} s). Top functions by own time:", "",
              "| function | calls | own s | share of busy | µs/event |", "|---|---:|---:|---:|---:|"]
        for r in prof["top_tottime"][:15]:
            L.append(f"| `{r['function']}` | {r['calls']:,} | {r['tottime_s']:.2f} | {r['share_of_busy']:.1%} "
                     f"| {r['us_per_event']:.0f} |")
        L += ["", "Cumulative (incl. callees) for the agents and the suspects:", "",
              "| function | calls | cumulative s | µs/event |", "|---|---:|---:|---:|"]
        for r in prof["cumulative"][:12]:
            L.append(f"| `{r['function']}` | {r['calls']:,} | {r['cumtime_s']:.2f} | {r['us_per_event']:.0f} |")
    L += ["", machine_line(doc) + f" Bench took {doc['runtime_s']:.0f} s."]
    return "\n".join(L)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short run: 2 rounds of 3,000 events, small warm-up")
    ap.add_argument("--events", type=int, default=6_000, help="events per measured round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=8_000, help="events before the measured rounds (fills the keys)")
    ap.add_argument("--core-events", type=int, default=5_000, help="events of each round the raw+core loop runs on")
    ap.add_argument("--event-rate", type=float, default=20_000.0, help="event-time rate of the events (per second)")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--idle-seconds", type=float, default=3.0)
    ap.add_argument("--no-profile", dest="profile", action="store_false", help="skip the cProfile round")
    ap.add_argument("--profile-events", type=int, default=3_000)
    ap.add_argument("--sample", action="store_true", help="also run the all-thread stack sampler in the profiled round")
    ap.add_argument("--keep-pstats", type=Path, default=None, help="copy the worker's pstats file here")
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--no-stack", action="store_true", help="only the in-process per-event costs")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.quick:
        args.events, args.rounds, args.warmup, args.core_events, args.profile_events = 3_000, 2, 2_000, 2_000, 2_000
        args.idle_seconds = 2.0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t0 = time.perf_counter()
    doc: dict[str, Any] = {"bench": "metadata_path", "args": {k: str(v) for k, v in vars(args).items()},
                           "machine": machine_info(), "loadavg_start": loadavg(),
                           "targets": {"events_s": TARGET_EVENTS_S, "ratio_to_raw": TARGET_RATIO}}
    log("per-event costs in isolation ...")
    doc["components"] = bench_components(load_settings(env={}))
    if not args.no_stack:
        root = Path(tempfile.mkdtemp(prefix="sentinel-bench-metadata-"))
        try:
            run_stack(args, root, doc)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        rs = doc["stack"]["rounds"]
        if rs:
            doc["summary"] = {"worker_events_s": med([r["events_s"] for r in rs]),
                              "raw_events_s": med([r["raw"]["events_s"] for r in rs]),
                              "ratio": med([r["ratio"] for r in rs]),
                              "core_events_s": med([r["core_current"]["events_s"] for r in rs])}
    doc["loadavg_end"] = loadavg()
    doc["runtime_s"] = time.perf_counter() - t0
    text = report(doc)
    print(text)
    path = write_results("metadata_path", doc, text, args.out)
    log(f"wrote {path} and {path.with_suffix('.md')}")


if __name__ == "__main__":
    main()
