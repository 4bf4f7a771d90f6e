"""Scoring throughput: raw CLIP image encoder vs the scorer core vs the whole embedded stack.

All on the same model and the same batch size: ``ClipSpec(arch=--arch, batch_size=--batch)``,
seeded random weights (seed 0), as the worker builds it from ``Settings.clip_spec`` with
``clip_arch=--arch`` and no ``clip_checkpoint``. ``--arch`` defaults to the tiny CLIP
(``sentinel.clip.TINY_ARCH``, thousands of images/s: the encoder is nearly free, so the ratios
below mostly measure everything around it); any open_clip architecture name works offline, e.g.
``--arch ViT-B-32`` (random weights: the compute of the real model, ~300x the tiny one's, but
meaningless scores).

1. **raw encoder**: ``ClipExtractor.encode_images`` on pre-decoded 64x64 PIL images (the demo's
   images: ``tests/conftest.make_event``), in batches of ``--batch``; images/s.
2. **scorer core**: what the worker does per score batch, in one thread: the gate's
   ``worker.stages.gate.check_images`` (WebP decode of image + reference; the worker runs it in
   the gate thread and hands the pixels on) and ``worker.stages.scoring.ScoreStage`` on those
   pixels (``encode_images`` for images and references, ``encode_texts``, CLIP scores, output
   rows), on the same events in the same batches; images/s and its ratio to (1). 1 in 5 demo
   events carries a reference image, which costs a second image decode and encode.
   Rounds alternate the order of (1) and (2) and the ratio is taken within each round.
   Also per-event costs of the other work a worker does per event (Avro decode, checks,
   row building, tally and drift table updates), to attribute the worker's CPU.
3. **end to end**: ``devstack.stack.EmbeddedStack`` (real noida broker, Faust worker subprocess,
   chDB) with ``score_batch_size=--batch`` and ``clip_arch=--arch``, other settings at their
   defaults. After a warm-up, the CPU an idle stack uses is measured (small since the worker
   waits on empty fetches: ~0.03 cores). Then ``--runs`` throughput runs, each preceded by a
   short raw-encoder probe (images/s as in 1, on up to 128 of the in-process images, default
   threads and 1 thread) taken with the stack frozen (SIGSTOP to its process groups, so none of
   it runs next to the probe; ~1-3 s with the tiny CLIP, ~5-10 s with ViT-B-32; ``--rewarm``
   unmeasured events after the thaw): publish ``--events`` pre-encoded JobCompleted events as
   fast as ``inference.publisher.JobPublisher`` takes them (its bounded in-flight window) and poll ``sql/reports/progress.sql`` through
   ``warehouse.client.open_reader`` (every ``--poll`` s) until all are stored and scored;
   events/s = events / (that moment - first publish); ratio = that / the adjacent raw probe.
   Recorded alongside: the worker's /metrics counters over time (when it had consumed, scored,
   stored everything), CPU seconds of the worker per thread (event loop vs the others), the
   broker and this process, and from ClickHouse every job's scored_at (last one = scoring
   done; distinct values = score batches, so the mean batch size). Then event-to-scored
   latency: events published at a paced 50% and 80% of the measured capacity, p50/p95/p99 of
   (scores.scored_at - publish time); scored_at is stamped by ``ScoreStage`` when a batch is
   scored (ms precision), same host clock. ``--worker-threads N`` (repeatable) repeats all of 3
   on another stack whose worker has ``OMP_NUM_THREADS=N`` (N torch threads; the shipped
   default is ``sentinel.clip.cpu_threads()``: cores - 1); ``--worker-1thread`` is ``--worker-threads 1``.
4. ``torch.cuda.is_available()`` is recorded; with a CUDA device (1) is also measured on it.

The machine may be shared: wall-clock rates move with other load, so rounds alternate their
order, ratios are taken within a round / next to each run, medians are reported, and CPU
seconds per image/event (less sensitive to other load) are reported next to the rates.
``--budget-s`` bounds the runtime: past it, later repeats are skipped (and listed).

Sizes depend on the model. Options not given on the command line take these defaults (``--quick``
picks its own for the options not given; options given always win):

===================  =================  ==========================  ===========  ==================
option               tiny CLIP          tiny CLIP ``--quick``       other arch   other ``--quick``
===================  =================  ==========================  ===========  ==================
--events / --runs    2000 / 3           600 / 1                     224 / 3      96 / 1
--warmup / --rewarm  300 / 32           100 / 32                    64 / 32      32 / 16
--micro-images       256                128                         64           32
--rounds             5                  2                           2            1
--latency-seconds    8 (x 2 repeats)    4 (x 1)                     10 (x 2)     6 (x 1)
--budget-s           420                150                         300          150
===================  =================  ==========================  ===========  ==================

With ViT-B-32 (~16-18 images/s on one core; the worker scores ~10 events/s end to end here) the
other-arch defaults should take about 4-5 minutes (estimated from the 85 s of a ``--quick`` run;
``--budget-s`` skips later repeats if it runs slower). A paced latency run publishes at least 50
events, so at low rates it runs past ``--latency-seconds``.

Usage::

    python bench/scoring.py [--arch ViT-B-32] [--events N] [--batch 32] [--quick] [--out PATH]
    python bench/scoring.py --from-json bench/results/scoring.json   # re-render a stored run, measure nothing

Prints a Markdown table and writes ``bench/results/scoring.json`` (tiny CLIP) or
``bench/results/scoring_<arch>.json`` (arch lowercased, other characters than letters and digits
as ``_``: ``scoring_vit_b_32.json``), and the table next to it as ``.md``, unless ``--out`` is
given. The stack is always stopped (also on Ctrl-C / SIGTERM) and its temporary data directory
removed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import sql as sql_files  # noqa: E402
from conftest import make_event  # noqa: E402
from contracts.codec import AvroCodec, content_hash  # noqa: E402
from sentinel.clip import TINY_ARCH, ClipExtractor, ClipSpec, cpu_threads  # noqa: E402
from sentinel.drift import CusumDriftDetector, DriftConfig  # noqa: E402
from sentinel.latency import LiveStats, latency_parts  # noqa: E402
from sentinel.scoring import BatchScorer, ScoreInput  # noqa: E402
from sentinel.validation import check_job, decode_image  # noqa: E402
from config.settings import load_settings  # noqa: E402
from sentinel.buckets import live_key  # noqa: E402
from warehouse import rows  # noqa: E402
from worker import codecs  # noqa: E402
from worker.stages.drift import DRIFT_METRIC  # noqa: E402
from worker.stages.gate import check_images  # noqa: E402
from worker.stages.scoring import ScoreStage  # noqa: E402
from worker.stages.triage import Accepted  # noqa: E402
from worker.runtime import towers_pool  # noqa: E402
from _machine import cpu_model as _cpu_model

RESULTS = REPO / "bench" / "results" / "scoring.json"  # the tiny CLIP's; other archs: default_out()
# torch's own default (one intra-op thread per core), measured against 1 thread; ClipExtractor
# now sets sentinel.clip.cpu_threads() (cores - 1, at least 1) when it is built
ALL_CORES = torch.get_num_threads()
CLK = os.sysconf("SC_CLK_TCK")


def spec(args: argparse.Namespace, **kw: Any) -> ClipSpec:
    """The model every part of the bench uses: --arch, seeded random weights (as the worker's
    ``Settings.clip_spec`` with no checkpoint), score batch size --batch."""
    return ClipSpec(arch=args.arch, batch_size=args.batch, **kw)


def default_out(arch: str) -> Path:
    if arch == TINY_ARCH:
        return RESULTS
    return RESULTS.with_name(f"scoring_{re.sub(r'[^a-z0-9]', '_', arch.lower())}.json")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def pctl(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


# --------------------------------------------------------------------------- machine / CPU


def machine_info() -> dict[str, Any]:
    cpu_model = _cpu_model()

    def ver(pkg: str) -> str | None:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None

    return {
        "processor": platform.processor(),
        "cpu_model": cpu_model,
        "machine": platform.machine(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)),
        "loadavg_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),  # torch's default: one per core
        # what the worker's ClipExtractor sets: Settings.torch_threads (OMP_NUM_THREADS if set), else cores - 1
        "clip_extractor_threads": cpu_threads(load_settings().torch_threads),
        "cuda_available": torch.cuda.is_available(),
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "packages": {p: ver(p) for p in ("open_clip_torch", "faust-streaming", "aiokafka", "chdb", "noida-db",
                                         "clickhouse-connect", "fastavro", "pillow", "numpy")},
    }


def _stat_fields(path: str) -> tuple[str, list[str]] | None:
    try:
        raw = Path(path).read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    return comm, raw[raw.rindex(")") + 2 :].split()  # fields from #3 (state) on


def group_cpu_s(pgid: int | None) -> float:
    """CPU seconds (user+sys) of the live processes of a process group."""
    if pgid is None:
        return 0.0
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = _stat_fields(f"/proc/{entry}/stat")
        if st and int(st[1][2]) == pgid:  # field 5: pgrp
            total += int(st[1][11]) + int(st[1][12])  # fields 14, 15: utime, stime
    return total / CLK


# --------------------------------------------------------------------------- 1 + 2: in process


def make_batches(xs: list[Any], n: int) -> list[list[Any]]:
    return [xs[i : i + n] for i in range(0, len(xs), n)]


def timed(fn: Callable[[], None]) -> tuple[float, float]:
    """(wall s, CPU s of this process) of one call."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


class with_threads:
    """torch intra-op threads for a block (the worker uses torch's default: one per core)."""

    def __init__(self, n: int | None) -> None:
        self.n = n

    def __enter__(self) -> None:
        self.prev = torch.get_num_threads()
        if self.n:
            torch.set_num_threads(self.n)

    def __exit__(self, *exc: Any) -> None:
        torch.set_num_threads(self.prev)


def raw_probe(extractor: ClipExtractor, images: list[Any], batch: int) -> dict[str, float]:
    """A short raw-encoder measurement, taken next to each end-to-end run (same load)."""
    batches = make_batches(images, batch)
    out = {}
    for name, n_threads in (("raw_img_s", ALL_CORES), ("raw_img_s_1thread", 1)):
        with with_threads(n_threads):
            extractor.encode_images(batches[0])
            wall, _ = timed(lambda: [extractor.encode_images(b) for b in batches])
        out[name] = len(images) / wall
    return out


def bench_scorer(args: argparse.Namespace, extractor: ClipExtractor) -> dict[str, Any]:
    settings = load_settings(env={}, score_batch_size=args.batch, clip_arch=args.arch)
    # the scorer as the worker builds it: the towers side by side where parallel_towers says so
    towers = towers_pool(settings, extractor.image_tower_params)
    stage = ScoreStage(BatchScorer(extractor, towers), settings.scorer_version)

    def score_core(batch: list[Accepted]) -> None:  # the gate's decode (gate thread) + the score stage
        stage(batch, {(a.partition, a.offset): check_images(a.event) for a in batch})
    events = [make_event(i, seed=7) for i in range(args.micro_images)]
    accepted = [Accepted(e, i % 4, i) for i, e in enumerate(events)]
    images = [decode_image(e["image"], e["media_type"]) for e in events]
    refs = [decode_image(e["reference_image"]) for e in events if e["reference_image"]]
    prompts = [e["prompt"] for e in events]
    img_b, acc_b, txt_b, ref_b = (make_batches(x, args.batch) for x in (images, accepted, prompts, refs))
    n = len(events)

    def raw() -> None:
        for b in img_b:
            extractor.encode_images(b)

    def core() -> None:
        for b in acc_b:
            score_core(b)

    def decode_only() -> None:
        for e in events:
            decode_image(e["image"], e["media_type"])
            if e["reference_image"]:
                decode_image(e["reference_image"])

    def preprocess_only() -> None:
        for im in images:
            extractor.preprocess(im.convert("RGB"))

    def text_only() -> None:
        for b in txt_b:
            extractor.encode_texts(b)

    def text_full() -> None:  # the text tower on all 77 positions (before the prefix shortcut)
        with torch.inference_mode():
            for b in txt_b:
                torch.nn.functional.normalize(extractor.encode_tokens(extractor.tokenizer(b), truncate=False).float(), dim=-1)

    def ref_only() -> None:
        for b in ref_b:
            extractor.encode_images(b)

    scorer = BatchScorer(extractor, towers)
    inputs = [ScoreInput(e["job_id"], e["prompt"], im) for e, im in zip(events, images)]
    inp_b = make_batches(inputs, args.batch)

    def scorer_fn() -> None:  # BatchScorer.score on the same pre-decoded images (no references)
        for b in inp_b:
            scorer.score(b)

    threads = ALL_CORES
    # warm-up: the first torch calls are several times slower. The tiny CLIP warms up on all the
    # images three times (cheap); a bigger model on one batch per thread setting (its first-call
    # overhead is small next to a batch, and a pass over all images takes seconds)
    if args.arch == TINY_ARCH:
        for n_threads in (ALL_CORES, 1, ALL_CORES):
            with with_threads(n_threads):
                raw()
                core()
                scorer_fn()
    else:
        for n_threads in (ALL_CORES, 1):
            with with_threads(n_threads):
                extractor.encode_images(img_b[0])
                score_core(acc_b[0])
                scorer.score(inp_b[0])
    keys = ("raw_img_s", "core_img_s", "ratio", "raw_cpu_us", "core_cpu_us", "scorer_img_s", "ratio_scorer",
            "raw_img_s_1thread", "core_img_s_1thread", "ratio_1thread", "raw_cpu_us_1thread", "core_cpu_us_1thread",
            "scorer_img_s_1thread", "ratio_scorer_1thread", "decode_us", "preprocess_us", "encode_text_us",
            "encode_text_full_us", "encode_ref_us_per_event", "encode_text_us_1thread", "encode_text_full_us_1thread",
            "encode_ref_us_per_event_1thread", "loadavg")
    res: dict[str, list[float]] = {k: [] for k in keys}
    variants = [("", ALL_CORES), ("_1thread", 1)]
    for r in range(args.rounds):
        order = variants if r % 2 == 0 else variants[::-1]
        for suffix, n_threads in order:
            with with_threads(n_threads):
                trio = [("raw", raw), ("core", core), ("scorer", scorer_fn)]
                got = {name: timed(fn) for name, fn in (trio if r % 2 == 0 else trio[::-1])}
                texts = [("encode_text_us", text_only), ("encode_text_full_us", text_full)]
                for name, fn in (texts if r % 2 == 0 else texts[::-1]):
                    res[name + suffix].append(timed(fn)[0] / n * 1e6)
                res["encode_ref_us_per_event" + suffix].append(timed(ref_only)[0] / n * 1e6)
            res["raw_img_s" + suffix].append(n / got["raw"][0])
            res["core_img_s" + suffix].append(n / got["core"][0])
            res["scorer_img_s" + suffix].append(n / got["scorer"][0])
            res["ratio" + suffix].append(got["raw"][0] / got["core"][0])
            res["ratio_scorer" + suffix].append(got["raw"][0] / got["scorer"][0])
            res["raw_cpu_us" + suffix].append(got["raw"][1] / n * 1e6)
            res["core_cpu_us" + suffix].append(got["core"][1] / n * 1e6)
        res["decode_us"].append(timed(decode_only)[0] / n * 1e6)
        res["preprocess_us"].append(timed(preprocess_only)[0] / n * 1e6)
        res["loadavg"].append(os.getloadavg()[0])
        log(f"  round {r + 1}/{args.rounds}: {threads} threads: raw {res['raw_img_s'][-1]:.0f} img/s, "
            f"BatchScorer.score {res['scorer_img_s'][-1]:.0f} (ratio {res['ratio_scorer'][-1]:.2f}), "
            f"decode+ScoreStage {res['core_img_s'][-1]:.0f} (ratio {res['ratio'][-1]:.2f}); 1 thread: raw "
            f"{res['raw_img_s_1thread'][-1]:.0f}, BatchScorer.score {res['scorer_img_s_1thread'][-1]:.0f} "
            f"(ratio {res['ratio_scorer_1thread'][-1]:.2f}), decode+ScoreStage {res['core_img_s_1thread'][-1]:.0f} "
            f"(ratio {res['ratio_1thread'][-1]:.2f}); text {res['encode_text_us'][-1]:.0f} µs vs full context "
            f"{res['encode_text_full_us'][-1]:.0f} (load {res['loadavg'][-1]:.1f})")
    out: dict[str, Any] = {"images": n, "with_reference": len(refs), "batch": args.batch, "torch_threads": threads,
                           "towers_side_by_side": towers is not None, "rounds": res, "median": {k: med(v) for k, v in res.items()}}
    out["cuda"] = bench_cuda(args, images) if torch.cuda.is_available() else None
    out["probe_images"] = images[:128]
    return out


def bench_cuda(args: argparse.Namespace, images: list[Any]) -> dict[str, Any]:
    ex = ClipExtractor(spec(args, device="cuda"))
    batches = make_batches(images, args.batch)
    for _ in range(3):
        for b in batches:
            ex.encode_images(b)
    rates = []
    for _ in range(args.rounds):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for b in batches:
            ex.encode_images(b)
        torch.cuda.synchronize()
        rates.append(len(images) / (time.perf_counter() - t0))
    return {"raw_img_s_rounds": rates, "raw_img_s": med(rates), "device": torch.cuda.get_device_name(0)}


def bench_components(args: argparse.Namespace) -> dict[str, Any]:
    """µs per event of the worker's other per-event work, and how often the worker does each."""
    settings = load_settings(env={})
    pricing = settings.pricing()
    avro = AvroCodec("JobCompleted")
    events = [make_event(i, seed=8) for i in range(args.micro_images)]
    raws = [avro.encode(e) for e in events]
    scored = [{"job_id": e["job_id"], "scorer_version": "v1/x", "model_id": e["model_id"], "niche": e["niche"],
               "scored_at": e["delivered_at"], "clip_prompt_score": 20.0 + (i % 7), "clip_reference_score": None,
               "embedding": [0.125] * 64, "flags": []} for i, e in enumerate(events)]
    scored_raw = [codecs.encode("JobScored", v) for v in scored]
    n = len(events)

    def avro_decode() -> None:
        for raw in raws:
            codecs.decode("JobCompleted", raw)

    def checks() -> None:
        for e in events:
            check_job(e, max_image_bytes=settings.max_image_bytes)

    def hashes() -> None:
        for e in events:
            content_hash(e)

    def gate_images() -> None:  # the gate's decode of image + reference, once per offset
        for e in events:
            check_images(e)

    def scored_encode() -> None:
        for v in scored:
            codecs.encode("JobScored", v)

    def scored_decode() -> None:
        for raw in scored_raw:
            codecs.decode("JobScored", raw)

    def sink_rows() -> None:
        for b in range(0, n, 500):
            chunk = events[b : b + 500]
            rows.job_rows([(e, 0, i) for i, e in enumerate(chunk)])
            rows.image_rows(chunk)
            rows.score_rows(scored[b : b + 500])

    def tally() -> None:  # the tally stage's table update, incl. the JSON the changelog carries
        table: dict[str, Any] = {}
        for i, e in enumerate(events):
            key = live_key(e, i % 4, settings.live_bucket_s)
            stored = table.get(key)
            state = LiveStats.from_dict(stored["stats"] if stored else None)
            cost = pricing.job_cost(provider=e["provider"], gpu_type=e["gpu_type"], gpu_seconds=e["gpu_seconds"],
                                    api_cost_usd=e.get("api_cost_usd"))
            if state.update(partition=i % 4, offset=i, parts_ms=latency_parts(e), gpu_seconds=e["gpu_seconds"],
                            cost_usd=cost):
                table[key] = {"bucket_s": settings.live_bucket_s, "stats": state.to_dict()}
                json.dumps(table[key])

    def drift() -> None:
        table: dict[str, Any] = {}
        cfg = DriftConfig()
        for i, v in enumerate(scored):
            key = f"{v['model_id']}|{v['niche']}"
            stored = table.get(key)
            det = (CusumDriftDetector.from_dict(stored, config=cfg) if stored
                   else CusumDriftDetector(v["model_id"], v["niche"], DRIFT_METRIC, cfg))
            det.update(v[DRIFT_METRIC], 1.0e9 + i, partition=0, offset=i)
            table[key] = det.to_dict()
            json.dumps(table[key])

    parts = {  # name: (fn, times per event in the worker, which agent)
        "avro_decode_JobCompleted": (avro_decode, 1, "triage (jobs agent): once per offset"),
        "check_job": (checks, 1, "triage: once per offset"),
        "content_hash": (hashes, 1, "duplicate detection: once per offset (Accepted.content_hash), "
                                    "for the gate and the jobs rows"),
        "gate_check_images": (gate_images, 1, "the gate: check_images once per offset (ScoreStage takes its "
                                              "pixels; counted in the scorer core too)"),
        "encode_JobScored": (scored_encode, 1, "score -> jobs.scored"),
        "decode_JobScored": (scored_decode, 1, "scores agent: once per record for store and drift"),
        "arrow_rows": (sink_rows, 1, "job_rows + image_rows + score_rows (batches of 500)"),
        "tally_update": (tally, 1, "LiveStats from_dict/update/to_dict + JSON per event (upper bound: the tally stage keeps decoded states and writes each key once per batch)"),
        "drift_update": (drift, 1, "detector from_dict/update/to_dict + JSON per event (upper bound: the drift stage keeps decoded detectors and writes each once per batch)"),
    }
    times: dict[str, list[float]] = {k: [] for k in parts}
    for _ in range(2):
        for name, (fn, _, _) in parts.items():
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) / n * 1e6)
    return {name: {"us_per_call": min(times[name]), "per_event": mult, "us_per_event": min(times[name]) * mult,
                   "where": where} for name, (_, mult, where) in parts.items()}


# --------------------------------------------------------------------------- 3: end to end


class _PreEncoded:
    """Stands in for JobPublisher's Avro codec: events are encoded before the clock starts."""

    def encode(self, event: dict[str, Any]) -> bytes:
        return event["raw"]


class Publisher:
    """inference.publisher.JobPublisher on its own event loop thread (the main thread polls)."""

    def __init__(self, bootstrap: str) -> None:
        from inference.publisher import JobPublisher

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="publisher", daemon=True)
        self.thread.start()

        async def make() -> Any:  # aiokafka wants its producer built on the loop that runs it
            pub = JobPublisher(bootstrap)
            pub.codec = _PreEncoded()
            await pub.start()
            return pub

        self.pub = self.call(make())

    def call(self, coro: Any, timeout: float = 600) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def submit(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    async def burst(self, items: list[dict[str, Any]]) -> dict[str, float]:
        t0 = time.time()
        for it in items:
            await self.pub.publish(it)
        t_sent = time.time()
        await self.pub.flush()
        return {"t0": t0, "sent": t_sent, "acked": time.time()}

    async def paced(self, items: list[dict[str, Any]], rate: float) -> dict[str, Any]:
        times = []
        t0 = time.time()
        for i, it in enumerate(items):
            delay = t0 + i / rate - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            times.append(time.time())
            await self.pub.publish(it)
        await self.pub.flush()
        return {"t0": t0, "publish_times": times, "acked": time.time()}

    def close(self) -> None:
        try:
            self.call(self.pub.stop(), timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


def prepare(seed: int, n: int) -> list[dict[str, Any]]:
    avro = AvroCodec("JobCompleted")
    out = []
    for i in range(n):
        e = make_event(i, seed=seed)
        out.append({"job_id": e["job_id"], "raw": avro.encode(e)})
    return out


_METRIC = re.compile(r'^(sentinel_[a-z_]+?)(?:_total)?(?:\{table="(\w+)"\})?\s+([0-9.eE+-]+)$')


def worker_metrics(url: str) -> dict[str, float]:
    """The sentinel_* counters of one worker's /metrics (``name[table]`` for per-table ones)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _METRIC.match(line)
        if m and not line.startswith("sentinel_latency") and "_created" not in line:
            key = m[1] + (f"[{m[2]}]" if m[2] else "")
            out[key] = out.get(key, 0.0) + float(m[3])
    return out


class Probe:
    """Reads the worker's counters and the warehouse's progress."""

    def __init__(self, stack: Any) -> None:
        from warehouse.client import open_reader

        self.stack = stack
        self.reader = open_reader(stack.settings.dsn)
        self.progress_sql = sql_files.report("progress")

    def progress(self) -> dict[str, int]:
        return self.reader.query(self.progress_sql).to_pylist()[0]

    def metrics(self) -> dict[str, float]:
        return worker_metrics(self.stack.worker.url)

    def cpu(self) -> dict[str, Any]:
        w, b = self.stack.worker.proc.pid, self.stack.broker.pid
        return {"worker": group_cpu_s(w), "worker_threads": per_tid_cpu_s(w), "broker": group_cpu_s(b),
                "bench": time.process_time(), "wall": time.time()}

    def scored_at(self, prefix: str) -> dict[str, float]:
        t = self.reader.query("SELECT job_id, scored_at FROM sentinel.scores FINAL WHERE startsWith(job_id, {p:String})",
                              {"p": prefix})
        return {j: ts.timestamp() for j, ts in zip(t.column("job_id").to_pylist(), t.column("scored_at").to_pylist())}


def cpu_delta(a: dict[str, Any], b: dict[str, Any], n: int) -> dict[str, Any]:
    wall = b["wall"] - a["wall"]
    th = {f"{name}#{tid}": cpu - a["worker_threads"].get(tid, ("", 0.0))[1]
          for tid, (name, cpu) in b["worker_threads"].items()}
    main = next((v for k, v in th.items() if k.startswith("main (event loop)")), 0.0)
    others = {k: v for k, v in th.items() if not k.startswith("main (event loop)")}
    out = {
        "wall_s": wall,
        "worker_cpu_s": b["worker"] - a["worker"],
        "worker_event_loop_cpu_s": main,
        "worker_other_threads_cpu_s": sum(others.values()),
        "worker_top_threads_cpu_s": dict(sorted(((k, v) for k, v in others.items() if v > 0.005),
                                                key=lambda kv: -kv[1])[:6]),
        "broker_cpu_s": b["broker"] - a["broker"],
        "bench_cpu_s": b["bench"] - a["bench"],
    }
    out["total_cpu_s"] = out["worker_cpu_s"] + out["broker_cpu_s"] + out["bench_cpu_s"]
    out["cores_busy"] = out["total_cpu_s"] / wall if wall > 0 else float("nan")
    out["per_event_ms"] = {k: v / n * 1e3 for k, v in out.items() if k.endswith("_cpu_s") and isinstance(v, float)}
    return out


def throughput_run(pub: Publisher, probe: Probe, items: list[dict[str, Any]], prefix: str,
                   poll_s: float, timeout: float) -> dict[str, Any]:
    n = len(items)
    base = probe.progress()
    m0 = probe.metrics()
    c0 = probe.cpu()
    fut = pub.submit(pub.burst(items))
    t0_guess = time.time()
    first: dict[str, float] = {}
    timeline = []
    want = {"consumed": m0.get("sentinel_events_consumed", 0) + n,
            "scored": m0.get("sentinel_events_scored", 0) + n,
            "stored_scores": m0.get("sentinel_rows_stored[scores]", 0) + n,
            "stored_jobs": m0.get("sentinel_rows_stored[jobs]", 0) + n}
    done_at = None
    while time.time() - t0_guess < timeout:
        time.sleep(poll_s)
        now = time.time()
        m = probe.metrics()
        p = probe.progress()
        t_p = time.time()
        got = {"consumed": m.get("sentinel_events_consumed", 0), "scored": m.get("sentinel_events_scored", 0),
               "stored_scores": m.get("sentinel_rows_stored[scores]", 0),
               "stored_jobs": m.get("sentinel_rows_stored[jobs]", 0)}
        timeline.append({"t": now, **got, "progress_jobs": p["jobs"], "progress_scored": p["scored"]})
        for k, v in got.items():
            if v >= want[k] and k not in first:
                first[k] = now
        if p["jobs"] >= base["jobs"] + n and p["scored"] >= base["scored"] + n:
            done_at = t_p
            break
    c1 = probe.cpu()
    pubt = fut.result(60)
    if done_at is None:
        raise RuntimeError(f"not all {n} events stored and scored after {timeout:.0f}s: {timeline[-1] if timeline else None}")
    scored = probe.scored_at(prefix)
    t0 = pubt["t0"]
    sat = sorted(scored.values())
    batches = len(set(round(s, 3) for s in sat))
    elapsed = done_at - t0
    for row in timeline:
        row["t"] = round(row["t"] - t0, 3)
    res = {
        "events": n,
        "elapsed_s": elapsed,
        "events_s": n / elapsed,
        "publish_s": pubt["sent"] - t0,
        "publish_acked_s": pubt["acked"] - t0,
        "publish_events_s": n / (pubt["acked"] - t0),
        "first_scored_at_s": sat[0] - t0,
        "last_scored_at_s": sat[-1] - t0,
        "scored_events_s": n / (sat[-1] - t0),
        # the scorer's pace once running: jobs scored after its first batch, first -> last
        # scored_at (no pipeline fill before the first batch, no output step after the last)
        "steady_events_s": (n - sat.count(sat[0])) / (sat[-1] - sat[0]) if sat[-1] > sat[0] else float("nan"),
        "worker_counters_reached_s": {k: v - t0 for k, v in first.items()},
        "score_batches": batches,
        "mean_batch": n / batches,
        "cpu": cpu_delta(c0, c1, n),
        "timeline": timeline,
    }
    return res


def latency_run(pub: Publisher, probe: Probe, items: list[dict[str, Any]], prefix: str, rate: float,
                poll_s: float, timeout: float) -> dict[str, Any]:
    n = len(items)
    base = probe.progress()
    c0 = probe.cpu()
    out = pub.call(pub.paced(items, rate), timeout=timeout)
    deadline = time.time() + timeout
    while time.time() < deadline:
        p = probe.progress()
        if p["scored"] >= base["scored"] + n and p["jobs"] >= base["jobs"] + n:
            break
        time.sleep(poll_s)
    else:
        raise RuntimeError(f"latency run at {rate:.0f}/s: not all scored after {timeout:.0f}s")
    c1 = probe.cpu()
    scored = probe.scored_at(prefix)
    lat = [(scored[it["job_id"]] - t) * 1e3 for it, t in zip(items, out["publish_times"])]
    achieved = (n - 1) / (out["publish_times"][-1] - out["publish_times"][0])
    batches = len(set(round(s, 3) for s in scored.values()))
    return {"target_rate": rate, "achieved_rate": achieved, "events": n,
            "p50_ms": pctl(lat, 50), "p95_ms": pctl(lat, 95), "p99_ms": pctl(lat, 99), "max_ms": max(lat),
            "mean_batch": n / batches, "cpu": cpu_delta(c0, c1, n)}


class Variant:
    """One embedded stack; ``env`` goes into the worker's environment (e.g. OMP_NUM_THREADS).

    While another variant is measured, or the raw encoder is probed, this one is frozen (SIGSTOP
    to the worker's and the broker's process groups), so none of it runs next to the measurement
    (an idle stack still uses a little CPU: see ``idle`` in the results).
    """

    def __init__(self, name: str, env: dict[str, str], args: argparse.Namespace, root: Path) -> None:
        from devstack.stack import EmbeddedStack

        self.name = name
        self.env = env
        self.settings = load_settings(env={}, data_dir=root / name, score_batch_size=args.batch, partitions=4,
                                      clip_arch=args.arch, app_id=f"sentinel-bench-{os.getpid()}-{name}")
        self.stack = EmbeddedStack(self.settings)
        self.pub: Publisher | None = None
        self.probe: Probe | None = None
        self.frozen = False
        self.seed = 0
        self.out: dict[str, Any] = {"worker_env": env, "settings": {k: getattr(self.settings, k) for k in (
            "partitions", "score_batch_size", "score_batch_wait_s", "sink_batch_size", "sink_batch_wait_s",
            "device", "clip_arch", "clip_checkpoint", "clip_seed")}, "runs": [], "latency": [], "thaw_s": []}

    def start(self) -> None:
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)  # the worker's environment is os.environ + settings
        try:
            t = time.perf_counter()
            self.stack.start()
            self.out["stack_start_s"] = time.perf_counter() - t
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        log(f"[{self.name}] stack up in {self.out['stack_start_s']:.1f}s (worker pid {self.stack.worker.proc.pid})")
        self.probe = Probe(self.stack)
        self.out["reader"] = type(self.probe.reader).__name__
        self.pub = Publisher(self.stack.settings.bootstrap_servers)

    def _pgids(self) -> list[int]:
        return [p for p in (self.stack.worker.proc.pid if self.stack.worker.proc else None, self.stack.broker.pid)
                if p is not None]

    def freeze(self) -> None:
        for pgid in self._pgids():
            os.killpg(pgid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self, rewarm: int) -> None:
        if not self.frozen:
            return
        t = time.perf_counter()
        for pgid in self._pgids():
            os.killpg(pgid, signal.SIGCONT)
        self.frozen = False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if _get_json(f"{self.stack.worker.url}/sentinel/ready/").get("ready"):
                    break
            except Exception:
                pass
            time.sleep(0.2)
        self.seed += 1  # a few unmeasured events: any rejoin or reconnect happens here
        throughput_run(self.pub, self.probe, prepare(self.seed, rewarm), f"job-{self.seed}-", 0.2, 120)
        self.out["thaw_s"].append(time.perf_counter() - t)

    def idle(self, seconds: float) -> dict[str, Any]:
        pid = self.stack.worker.proc.pid
        t0, b0, w0 = time.time(), group_cpu_s(self.stack.broker.pid), per_tid_cpu_s(pid)
        time.sleep(seconds)
        dt, b1, w1 = time.time() - t0, group_cpu_s(self.stack.broker.pid), per_tid_cpu_s(pid)
        per = sorted(((w1[t][0], (w1[t][1] - w0.get(t, ("", 0.0))[1]) / dt) for t in w1), key=lambda x: -x[1])
        return {"seconds": dt, "worker_cores": sum(c for _, c in per), "busiest_worker_thread_cores": per[0][1],
                "busiest_worker_thread": per[0][0], "broker_cores": (b1 - b0) / dt}

    def stop(self) -> None:
        try:
            if self.frozen:
                for pgid in self._pgids():
                    os.killpg(pgid, signal.SIGCONT)
                self.frozen = False
            if self.pub is not None:
                self.pub.close()
        except Exception as exc:  # keep going: the stack must stop
            log(f"[{self.name}] publisher close failed: {exc}")
        finally:
            self.stack.stop()
            proc = self.stack.worker.proc
            self.out["stopped"] = {"worker_exit": proc.returncode if proc else None,
                                   "broker_running": self.stack.broker.is_running()}


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return json.loads(resp.read())


def per_tid_cpu_s(pid: int) -> dict[int, tuple[str, float]]:
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        st = _stat_fields(f"/proc/{pid}/task/{tid}/stat")
        if st:
            name = "main (event loop)" if int(tid) == pid else st[0]
            out[int(tid)] = (name, (int(st[1][11]) + int(st[1][12])) / CLK)
    return out


def bench_stack(args: argparse.Namespace, extractor: ClipExtractor, probe_images: list[Any],
                deadline: float) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="sentinel-bench-scoring-"))
    specs = [("default", {})]
    threads = list(args.worker_threads or []) + ([1] if args.worker_1thread else [])
    for n in dict.fromkeys(threads):
        specs.append((f"torch{n}", {"OMP_NUM_THREADS": str(n)}))
    out: dict[str, Any] = {"variants": {}, "skipped": []}
    try:
        for i, (name, env) in enumerate(specs):
            if i > 0 and time.monotonic() > deadline:
                out["skipped"].append(f"stack {name}")
                continue
            v = Variant(name, env, args, root)
            v.seed = 1000 * (i + 1)
            try:
                run_variant(args, v, extractor, probe_images, deadline, out["skipped"])
            finally:
                try:
                    v.stop()
                except Exception as exc:
                    log(f"[{v.name}] stop failed: {exc}")
                out["variants"][v.name] = v.out
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if out["skipped"]:
        log(f"skipped (time budget): {out['skipped']}")
    return out


def run_variant(args: argparse.Namespace, v: Variant, extractor: ClipExtractor, probe_images: list[Any],
                deadline: float, skipped: list[str]) -> None:
    log(f"[{v.name}] preparing events ({args.runs} x {args.events}) ...")
    work = [(v.seed + 100 + r, prepare(v.seed + 100 + r, args.events)) for r in range(args.runs)]
    v.start()
    log(f"[{v.name}] warm-up ({args.warmup} events) ...")
    v.seed += 1
    res = throughput_run(v.pub, v.probe, prepare(v.seed, args.warmup), f"job-{v.seed}-", args.poll, 180)
    v.out["warmup"] = {k: x for k, x in res.items() if k != "timeline"}
    time.sleep(1.0)
    v.out["idle"] = v.idle(args.idle_seconds)
    log(f"[{v.name}] idle: worker {v.out['idle']['worker_cores']:.2f} cores (busiest thread "
        f"{v.out['idle']['busiest_worker_thread_cores']:.2f}), broker {v.out['idle']['broker_cores']:.2f}")
    for r, (s, items) in enumerate(work):
        if r > 0 and time.monotonic() > deadline:
            skipped.append(f"{v.name} throughput run {r + 1}")
            continue
        # a short raw-encoder probe next to each run, with the stack frozen (nothing of it runs meanwhile)
        v.freeze()
        try:
            raw = raw_probe(extractor, probe_images, args.batch)
        finally:
            v.thaw(args.rewarm)
        res = throughput_run(v.pub, v.probe, items, f"job-{s}-", args.poll, 300)
        res["raw_probe"] = raw
        res["ratio_to_raw"] = res["events_s"] / raw["raw_img_s"]
        res["ratio_to_raw_1thread"] = res["events_s"] / raw["raw_img_s_1thread"]
        res["steady_ratio_to_raw_1thread"] = res["steady_events_s"] / raw["raw_img_s_1thread"]
        res["loadavg"] = os.getloadavg()[0]
        v.out["runs"].append(res)
        log(f"  [{v.name}] run {r + 1}/{args.runs}: {res['events_s']:.0f} events/s stored+scored "
            f"(last scored_at {res['scored_events_s']:.0f}/s, published {res['publish_events_s']:.0f}/s, "
            f"mean batch {res['mean_batch']:.1f}); raw encoder next to it {raw['raw_img_s']:.0f} img/s "
            f"(1 thread {raw['raw_img_s_1thread']:.0f}) -> ratio {res['ratio_to_raw']:.2f} "
            f"({res['ratio_to_raw_1thread']:.2f}) (load {res['loadavg']:.1f})")
    v.out["capacity_events_s"] = med([x["events_s"] for x in v.out["runs"]])
    v.out["ratio_to_raw"] = med([x["ratio_to_raw"] for x in v.out["runs"]])
    v.out["ratio_to_raw_1thread"] = med([x["ratio_to_raw_1thread"] for x in v.out["runs"]])
    # latency at 50% / 80% of the measured capacity, alternating
    for rep in range(args.latency_repeats):
        for frac in ((0.5, 0.8) if rep % 2 == 0 else (0.8, 0.5)):
            if rep > 0 and time.monotonic() > deadline:
                skipped.append(f"{v.name} latency {frac:.0%} repeat {rep + 1}")
                continue
            rate = v.out["capacity_events_s"] * frac
            n = max(50, int(rate * args.latency_seconds))
            v.seed += 1
            res = latency_run(v.pub, v.probe, prepare(v.seed, n), f"job-{v.seed}-", rate, args.poll,
                              120 + args.latency_seconds)
            res["fraction"] = frac
            res["loadavg"] = os.getloadavg()[0]
            v.out["latency"].append(res)
            log(f"  [{v.name}] latency at {frac:.0%} ({res['achieved_rate']:.0f}/s): p50 {res['p50_ms']:.0f} ms, "
                f"p95 {res['p95_ms']:.0f} ms, mean batch {res['mean_batch']:.1f}")
    v.out["latency"].sort(key=lambda x: x["fraction"])
    v.out["worker_stats"] = v.stack.worker.stats()


# --------------------------------------------------------------------------- report


def f0(x: float) -> str:
    """Rates and µs: no decimals, one below 100 (a realistic CLIP scores tens of events/s)."""
    return f"{x:,.1f}" if abs(x) < 100 else f"{x:,.0f}"


def where_the_rest_goes(doc: dict[str, Any]) -> list[str]:
    """Per stack: the in-process stages on the worker's torch thread count, down to end to end."""
    s, out = doc["scorer"]["median"], []
    for name, v in (doc.get("stack") or {}).get("variants", {}).items():
        if not v["runs"]:
            continue
        threads = (doc["machine"].get("clip_extractor_threads") if name == "default"
                   else int(v["worker_env"].get("OMP_NUM_THREADS", 0)))
        suffix = "_1thread" if threads == 1 else "" if threads == doc["machine"]["torch_threads"] else None
        if suffix is None:
            continue
        raw, bs, sb = s[f"raw_img_s{suffix}"], s[f"scorer_img_s{suffix}"], s[f"core_img_s{suffix}"]
        e2e = med([r["events_s"] for r in v["runs"]])
        out += ["", f"Where the rest goes, stack {name} ({threads} torch thread(s); in-process rates on as many "
                f"threads): raw encoder {f0(raw)} img/s = 1.00 -> `BatchScorer.score` {bs / raw:.2f} (text tower, "
                f"scores, batching) -> gate decode + `ScoreStage` {sb / raw:.2f} (WebP decode, preprocessing, and 1 "
                f"in 5 events carrying a reference image to encode: 1.2 images per event) -> end to end "
                f"{e2e / raw:.2f}: decode + `ScoreStage` at its in-process rate would have needed {e2e / sb:.0%} of "
                f"the run; the rest is triage, batching waits, sends and sink writes not overlapped with scoring, "
                f"and the other threads' CPU next to torch's."]
    return out


def report(doc: dict[str, Any]) -> str:
    s = doc["scorer"]["median"]
    raw = s["raw_img_s"]
    th = doc["machine"]["torch_threads"]
    towers = "; text tower + refs side by side with the image tower" if doc["scorer"].get("towers_side_by_side") else ""
    if doc.get("arch", TINY_ARCH) == TINY_ARCH:
        model = f"tiny CLIP `{doc['model']}`"
    else:
        model = f"CLIP `{doc['model']}`"
        if doc.get("random_weights", True):
            model += ", random weights: same compute as the real model, scores meaningless"
    lines = [
        f"### Scoring throughput ({model}, batch {doc['batch']}, CPU)",
        "",
        "| stage | /s (median) | ratio to raw encoder | CPU µs per image/event |",
        "|---|---:|---:|---:|",
        f"| 1. raw `ClipExtractor.encode_images`, pre-decoded 64x64, {th} torch threads (torch's default: one per core) | {f0(raw)} | 1.00 "
        f"| {f0(s['raw_cpu_us'])} |",
        f"| 1b. `BatchScorer.score`, same images, same batches (+ prompts: text tower, scores), {th} threads "
        f"| {f0(s['scorer_img_s'])} | **{s['ratio_scorer']:.2f}** (within-round: batching overhead) | |",
        f"| 2. gate `check_images` + `ScoreStage` (decode + images + refs + texts + scores{towers}), {th} threads | {f0(s['core_img_s'])} "
        f"| {s['ratio']:.2f} (within-round) | {f0(s['core_cpu_us'])} |",
        f"| 1'. raw `encode_images`, 1 torch thread | {f0(s['raw_img_s_1thread'])} | {s['raw_img_s_1thread'] / raw:.2f} "
        f"| {f0(s['raw_cpu_us_1thread'])} |",
        f"| 1b'. `BatchScorer.score`, 1 torch thread | {f0(s['scorer_img_s_1thread'])} "
        f"| {s['scorer_img_s_1thread'] / raw:.2f} (**{s['ratio_scorer_1thread']:.2f}** to 1') | |",
        f"| 2'. `check_images` + `ScoreStage`, 1 torch thread | {f0(s['core_img_s_1thread'])} | {s['core_img_s_1thread'] / raw:.2f} "
        f"({s['ratio_1thread']:.2f} to 1') | {f0(s['core_cpu_us_1thread'])} |",
    ]
    st = doc.get("stack")
    for name, v in (st or {}).get("variants", {}).items():
        runs = v["runs"]
        if not runs:
            continue
        e2e = med([r["events_s"] for r in runs])
        sc = med([r["scored_events_s"] for r in runs])
        cpu = med([r["cpu"]["per_event_ms"]["total_cpu_s"] for r in runs]) * 1e3
        label = (f"worker as shipped: {doc['machine'].get('clip_extractor_threads', '?')} torch thread(s)" if name == "default"
                 else f"worker {v['worker_env']}")
        lines += [
            f"| 3. end to end ({label}): publish -> stored + scored | {f0(e2e)} "
            f"| {v['ratio_to_raw']:.2f} to adjacent raw ({v['ratio_to_raw_1thread']:.2f} to 1-thread raw) "
            f"| {f0(cpu)} (worker+broker+bench) |",
            f"| 3a. same, publish -> last scored_at | {f0(sc)} "
            f"| {med([r['scored_events_s'] / r['raw_probe']['raw_img_s'] for r in runs]):.2f} | |",
        ]
        if all("steady_events_s" in r for r in runs):  # result files before 2026-12-04 lack it
            lines.append(f"| 3b. same, scoring pace: first -> last scored_at (no fill, no drain) "
                         f"| {f0(med([r['steady_events_s'] for r in runs]))} "
                         f"| {med([r['steady_ratio_to_raw_1thread'] for r in runs]):.2f} to 1-thread raw | |")
    if doc["scorer"].get("cuda"):
        lines.append(f"| 4. raw `encode_images` on CUDA | {f0(doc['scorer']['cuda']['raw_img_s'])} | | |")
    else:
        lines.append(f"| 4. CUDA | n/a: torch.cuda.is_available() = {doc['machine']['cuda_available']} | | |")
    lines += where_the_rest_goes(doc)
    lines += ["", "Scorer core, µs per event (medians, wall): "
              f"WebP decode {s['decode_us']:.0f} (image + 1 in 5 references), preprocess {s['preprocess_us']:.0f}, "
              f"encode image {1e6 / raw:.0f} (incl. preprocess), encode reference {s['encode_ref_us_per_event']:.0f}, "
              f"encode text {s['encode_text_us']:.0f} on the token prefix vs {s['encode_text_full_us']:.0f} on the full "
              f"77-token context (x{s['encode_text_full_us'] / s['encode_text_us']:.1f}) "
              f"(1 thread: image {1e6 / s['raw_img_s_1thread']:.0f}, "
              f"reference {s['encode_ref_us_per_event_1thread']:.0f}, text {s['encode_text_us_1thread']:.0f} vs "
              f"{s['encode_text_full_us_1thread']:.0f} full, x{s['encode_text_full_us_1thread'] / s['encode_text_us_1thread']:.1f}); "
              f"whole decode + ScoreStage {1e6 / s['core_img_s']:.0f} (1 thread {1e6 / s['core_img_s_1thread']:.0f}).",
              "", "| other per-event work in the worker (bench process, 1 core) | µs/call | × per event | µs/event |",
              "|---|---:|---:|---:|"]
    comp = doc["components"]
    for name, c in comp.items():
        lines.append(f"| {name}: {c['where']} | {c['us_per_call']:.0f} | {c['per_event']} | {c['us_per_event']:.0f} |")
    lines.append(f"| total | | | {sum(c['us_per_event'] for c in comp.values()):.0f} |")
    if st:
        lines += ["", "| stack | run | events/s | raw probe img/s (1 thread) | ratio (to 1-thread raw) | publish acked s | last scored_at s "
                  "| stored+scored s | mean batch | CPU ms/event: worker (event loop / other threads) | broker | bench "
                  "| cores busy | load |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
        for name, v in st["variants"].items():
            for i, r in enumerate(v["runs"]):
                c = r["cpu"]["per_event_ms"]
                lines.append(
                    f"| {name} | {i + 1} | {f0(r['events_s'])} | {f0(r['raw_probe']['raw_img_s'])} "
                    f"({f0(r['raw_probe']['raw_img_s_1thread'])}) | {r['ratio_to_raw']:.2f} ({r['ratio_to_raw_1thread']:.2f}) "
                    f"| {r['publish_acked_s']:.2f} | {r['last_scored_at_s']:.2f} | {r['elapsed_s']:.2f} "
                    f"| {r['mean_batch']:.1f} | {c['worker_cpu_s']:.2f} ({c['worker_event_loop_cpu_s']:.2f} / "
                    f"{c['worker_other_threads_cpu_s']:.2f}) | {c['broker_cpu_s']:.2f} | {c['bench_cpu_s']:.2f} "
                    f"| {r['cpu']['cores_busy']:.2f} | {r['loadavg']:.1f} |")
        for name, v in st["variants"].items():
            i = v.get("idle")
            if i:
                lines.append(f"\nIdle {name} stack (no events): worker {i['worker_cores']:.2f} cores, busiest thread "
                             f"{i['busiest_worker_thread_cores']:.2f} cores, broker {i['broker_cores']:.2f} cores.")
        if st.get("skipped"):
            lines.append(f"\nSkipped for the time budget: {', '.join(st['skipped'])}.")
        lines += ["", "Latency, publish -> scores.scored_at, paced at a fraction of that stack's capacity:", "",
                  "| stack | load | achieved events/s | events | p50 ms | p95 ms | p99 ms | mean batch | cores busy |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for name, v in st["variants"].items():
            for r in v["latency"]:
                lines.append(f"| {name} | {r['fraction']:.0%} | {f0(r['achieved_rate'])} | {r['events']} "
                             f"| {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['p99_ms']:.0f} | {r['mean_batch']:.1f} "
                             f"| {r['cpu']['cores_busy']:.2f} |")
    m = doc["machine"]
    lines += ["", f"Machine: {m['cpu_model'] or m['machine']}, {m['cores_available']}/{m['cpu_count']} cores (shared: "
              f"load {m['loadavg_at_start'][0]:.1f} at start, {m.get('loadavg_at_end', [float('nan')])[0]:.1f} at end), Python {m['python']}, torch {m['torch']} "
              f"({th} threads by default, ClipExtractor sets {m.get('clip_extractor_threads', '?')}), CUDA {m['cuda_available']}; bench took {doc['runtime_s']:.0f} s."]
    return "\n".join(lines)


# Defaults of the options that depend on the model and on --quick (None on the command line =
# not given): (tiny CLIP, tiny CLIP --quick, other arch, other arch --quick). A realistic model
# (ViT-B-32: ~16-18 images/s on one core, ~300x slower than the tiny CLIP) gets two runs of 640
# events (about a minute each end to end, so the pipeline's fill and drain, about 2 s, weigh
# little; row 3b shows the pace without them), about 6 minutes in all on a 2-core machine;
# --budget-s skips later repeats if it runs slower.
SIZES: dict[str, tuple[Any, Any, Any, Any]] = {
    "events": (2000, 600, 640, 96),
    "runs": (3, 1, 2, 1),
    "warmup": (300, 100, 64, 32),
    "rounds": (5, 2, 2, 1),
    "micro_images": (256, 128, 64, 32),
    "latency_seconds": (8.0, 4.0, 10.0, 6.0),
    "latency_repeats": (2, 1, 2, 1),
    "rewarm": (32, 32, 32, 16),
    "idle_seconds": (3.0, 2.0, 3.0, 2.0),
    "budget_s": (420.0, 150.0, 420.0, 150.0),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    def sizes(name: str) -> str:
        t, tq, o, oq = SIZES[name]
        return f"(default {t}, --quick {tq}; other --arch {o}, --quick {oq})"

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default=TINY_ARCH,
                    help=f"open_clip architecture, seeded random weights (default {TINY_ARCH}; e.g. ViT-B-32: "
                         "the real model's compute, meaningless scores)")
    ap.add_argument("--events", type=int, help=f"events per end-to-end throughput run {sizes('events')}")
    ap.add_argument("--batch", type=int, default=32, help="score batch size (encoder batches and score_batch_size)")
    ap.add_argument("--out", type=Path, help="JSON output, the table goes next to it as .md (default "
                                             "bench/results/scoring.json; other --arch: scoring_<arch>.json)")
    ap.add_argument("--runs", type=int, help=f"end-to-end throughput runs per stack (median reported) {sizes('runs')}")
    ap.add_argument("--warmup", type=int, help=f"events published before the measured runs {sizes('warmup')}")
    ap.add_argument("--rounds", type=int, help=f"in-process timing rounds (median reported) {sizes('rounds')}")
    ap.add_argument("--micro-images", type=int, help=f"events/images per in-process round {sizes('micro_images')}")
    ap.add_argument("--latency-seconds", type=float,
                    help=f"length of each paced latency run (at least 50 events) {sizes('latency_seconds')}")
    ap.add_argument("--latency-repeats", type=int,
                    help=f"repeats of the 50%%/80%% latency pair {sizes('latency_repeats')}")
    ap.add_argument("--poll", type=float, default=0.2, help="seconds between progress polls")
    ap.add_argument("--worker-1thread", action="store_true",
                    help="then repeat 3 on a second stack whose worker runs torch with OMP_NUM_THREADS=1")
    ap.add_argument("--worker-threads", type=int, action="append", metavar="N",
                    help="then repeat 3 on another stack whose worker runs torch with OMP_NUM_THREADS=N (repeatable)")
    ap.add_argument("--rewarm", type=int, help=f"unmeasured events after thawing a frozen stack {sizes('rewarm')}")
    ap.add_argument("--idle-seconds", type=float,
                    help=f"CPU of an idle stack, measured this long {sizes('idle_seconds')}")
    ap.add_argument("--budget-s", type=float, help="after this many seconds, later repeats are skipped (first of "
                                                   f"each kept) {sizes('budget_s')}")
    ap.add_argument("--no-stack", action="store_true", help="skip the end-to-end part")
    ap.add_argument("--quick", action="store_true", help="short run: smaller defaults for the options not given "
                                                        "(see above)")
    ap.add_argument("--from-json", type=Path, metavar="PATH",
                    help="measure nothing: print the report of a previous run's JSON and rewrite the .md next to it")
    args = ap.parse_args(argv)
    import open_clip  # sentinel.clip has registered the tiny CLIP's config

    if args.arch not in open_clip.list_models():
        ap.error(f"--arch {args.arch!r} is not an open_clip architecture (open_clip.list_models())")
    col = (0 if args.arch == TINY_ARCH else 2) + (1 if args.quick else 0)
    for name, values in SIZES.items():
        if getattr(args, name) is None:
            setattr(args, name, values[col])
    if args.out is None:
        args.out = default_out(args.arch)
    return args


def main() -> None:
    args = parse_args()
    if args.from_json:  # measure nothing: render a previous run's report again
        doc = json.loads(args.from_json.read_text())
        text = report(doc)
        print(text)
        args.from_json.with_suffix(".md").write_text(text.rstrip() + "\n")
        return

    # SIGTERM -> SystemExit, so the finally blocks stop the stacks (Ctrl-C already raises)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t_start = time.perf_counter()
    doc: dict[str, Any] = {"bench": "scoring", "batch": args.batch, "model": spec(args).version, "arch": args.arch,
                           "random_weights": spec(args).checkpoint is None,
                           "args": {k: str(v) for k, v in vars(args).items()}, "machine": machine_info()}
    log(f"model {doc['model']}; in-process: raw encoder vs decode + ScoreStage, {args.rounds} rounds x "
        f"{args.micro_images} images ...")
    extractor = ClipExtractor(spec(args))
    doc["scorer"] = bench_scorer(args, extractor)
    probe_images = doc["scorer"].pop("probe_images")
    log("per-event costs of the other worker work ...")
    doc["components"] = bench_components(args)
    if not args.no_stack:
        doc["stack"] = bench_stack(args, extractor, probe_images, time.monotonic() + args.budget_s
                                   - (time.perf_counter() - t_start))
    doc["machine"]["loadavg_at_end"] = os.getloadavg()
    doc["runtime_s"] = time.perf_counter() - t_start
    text = report(doc)
    print(text)
    doc["table_markdown"] = text
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    args.out.with_suffix(".md").write_text(text.rstrip() + "\n")
    log(f"wrote {args.out} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
