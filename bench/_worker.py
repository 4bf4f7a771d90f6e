"""Bench-only worker entry point: ``worker.main.run_worker`` plus the instruments benches need.

Run as ``python bench/_worker.py`` with the worker's usual ``SENTINEL_*`` environment (what
``devstack.stack.WorkerProcess`` passes). The product code runs unchanged; this only wraps it:

* ``SENTINEL_SCORE_ENABLED=0`` (a product setting, ``Settings.score_enabled``): a *metadata-path*
  worker. The ``jobs`` agent screens each batch (triage + gate) and archives (Arrow batches into
  ``sentinel.jobs``/``job_images``) and tallies (tallies + latency sketches in the
  changelog-backed ``live_stats`` table); no CLIP scores, no FID moments, batches of
  ``sink_batch_size``.
* ``GET /bench/progress/``: events tallied (``LiveStats.update`` calls that applied an offset,
  counted through ``worker.stages.tally.LiveStats``) with the wall time of the first and last
  one, rows inserted per table with the time of the last insert and the seconds spent inside
  ``ClickHouseWarehouse.insert``, live-table keys, the agents, and the native id and name of
  every Python thread. Counting costs one extra Python call per tally update (well under 1 µs).
* ``BENCH_TRACE=1`` and ``GET /bench/trace/``: start time, duration and batch size of every
  ``ScoreStage`` call (score thread) and ``Gate.screen`` await, to see where a batch waits.
  ``BENCH_TRACE=2`` adds the jobs agent's stages (``Screen``, ``Gate.judge`` in the gate thread,
  ``JobsAgent.deliver``, ``ArchiveStage``, ``TallyStage``) and every warehouse insert by table
  (rows as the size): a stage-level timeline of the metadata path.
* ``BENCH_SWITCH_INTERVAL=s``: ``sys.setswitchinterval(s)`` in the worker (an experiment).
* ``GET /bench/memory/``: after ``gc.collect()``, the number of gc-tracked Python objects (and
  the 40 most common types), the live-table keys and the JSON size of their values.
* ``GET /bench/profile/start/`` and ``/bench/profile/stop/?out=PATH``: cProfile of the event-loop
  thread (where every agent runs) between the two calls, written as pstats to PATH.
* ``GET /bench/sample/start/?interval=0.005`` and ``/bench/sample/stop/``: a sampling profiler
  over *all* threads (``sys._current_frames()`` every ``interval`` s from a daemon thread, the
  poor man's py-spy): per thread (named, with its native id), the functions most often on top of
  the stack ("self") and anywhere on it ("total"), as fractions of that thread's samples. Wall
  time, not CPU: a thread blocked in ``select`` shows up there.

Never used by the product or the tests.
"""

from __future__ import annotations

import cProfile
import collections
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import worker.main as worker_mod  # noqa: E402
import worker.stages.tally as tally_mod  # noqa: E402
from sentinel.latency import LiveStats  # noqa: E402
from warehouse.client import ClickHouseWarehouse  # noqa: E402


class Progress:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tallied = 0
        self.tally_first: float | None = None
        self.tally_last: float | None = None
        self.rows: dict[str, int] = {}
        self.inserts: dict[str, int] = {}
        self.insert_s: dict[str, float] = {}
        self.insert_last: dict[str, float] = {}
        self.started = time.time()

    def as_dict(self) -> dict[str, Any]:
        with self.lock:
            return {"tallied": self.tallied, "tally_first": self.tally_first, "tally_last": self.tally_last,
                    "rows": dict(self.rows), "inserts": dict(self.inserts), "insert_s": dict(self.insert_s),
                    "insert_last": dict(self.insert_last), "now": time.time(), "pid": os.getpid()}


PROGRESS = Progress()


class CountingLiveStats(LiveStats):
    """``LiveStats`` as the tally stage decodes and creates it, counting applied updates."""

    def update(self, **kwargs: Any) -> bool:  # type: ignore[override]
        applied = super().update(**kwargs)
        if applied:
            now = time.time()
            PROGRESS.tallied += 1  # event-loop thread only
            if PROGRESS.tally_first is None:
                PROGRESS.tally_first = now
            PROGRESS.tally_last = now
        return applied


_insert = ClickHouseWarehouse.insert


def _counting_insert(self: ClickHouseWarehouse, table: str, rows: Any, dedup_token: str | None = None) -> None:
    t0 = time.perf_counter()
    _insert(self, table, rows, dedup_token)
    dt = time.perf_counter() - t0
    n = getattr(rows, "num_rows", None) or len(rows)
    with PROGRESS.lock:
        PROGRESS.rows[table] = PROGRESS.rows.get(table, 0) + n
        PROGRESS.inserts[table] = PROGRESS.inserts.get(table, 0) + 1
        PROGRESS.insert_s[table] = PROGRESS.insert_s.get(table, 0.0) + dt
        PROGRESS.insert_last[table] = time.time()


class Sampler:
    """Samples every thread's Python stack at a fixed interval (see the module docstring)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.samples: collections.Counter[int] = collections.Counter()
        self.self_: dict[int, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        self.total: dict[int, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, name="bench-sampler", daemon=True)
        self.t0 = time.perf_counter()
        self.thread.start()

    @staticmethod
    def label(code: Any) -> str:
        return f"{code.co_name} ({Path(code.co_filename).name}:{code.co_firstlineno})"

    def run(self) -> None:
        me = threading.get_ident()
        while not self.stop_flag.wait(self.interval):
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                self.samples[ident] += 1
                self.self_[ident][self.label(frame.f_code)] += 1
                seen = set()
                f = frame
                while f is not None:
                    lab = self.label(f.f_code)
                    if lab not in seen:
                        seen.add(lab)
                        self.total[ident][lab] += 1
                    f = f.f_back

    def result(self, top: int = 25) -> dict[str, Any]:
        self.stop_flag.set()
        self.thread.join(2)
        names = {t.ident: (t.name, t.native_id) for t in threading.enumerate()}
        out = {"interval_s": self.interval, "seconds": time.perf_counter() - self.t0, "threads": {}}
        for ident, n in self.samples.most_common():
            name, native = names.get(ident, ("?", None))
            out["threads"][f"{name} (tid {native})"] = {
                "samples": n,
                "self": [(k, round(v / n, 4)) for k, v in self.self_[ident].most_common(top)],
                "total": [(k, round(v / n, 4)) for k, v in self.total[ident].most_common(top)],
            }
        return out


TRACE: dict[str, list[tuple[float, float, int]]] = collections.defaultdict(list)


def _traced(name: str, fn: Any) -> Any:
    """Wrap a sync method ``fn(self, batch, ...)``: (start wall time, duration, len(batch)) per call."""
    def wrapper(self: Any, batch: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.time()
        out = fn(self, batch, *args, **kwargs)
        TRACE[name].append((t0, time.time() - t0, len(batch)))
        return out
    return wrapper


def _traced_async(name: str, fn: Any) -> Any:
    """The same for a coroutine method."""
    async def wrapper(self: Any, batch: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.time()
        out = await fn(self, batch, *args, **kwargs)
        TRACE[name].append((t0, time.time() - t0, len(batch)))
        return out
    return wrapper


def _trace_stages() -> None:
    """BENCH_TRACE=2: the jobs agent's stages and the warehouse's inserts."""
    from worker.agents.jobs import JobsAgent
    from worker.stages.gate import Gate
    from worker.stages.screen import Screen
    from worker.stages.sinks import ArchiveStage
    from worker.stages.tally import TallyStage

    Gate.judge = _traced("gate.judge", Gate.judge)  # type: ignore[method-assign]
    Screen.__call__ = _traced_async("screen", Screen.__call__)  # type: ignore[method-assign]
    JobsAgent.deliver = _traced_async("deliver", JobsAgent.deliver)  # type: ignore[method-assign]
    ArchiveStage.__call__ = _traced_async("archive", ArchiveStage.__call__)  # type: ignore[method-assign]
    TallyStage.__call__ = _traced("tally", TallyStage.__call__)  # type: ignore[method-assign]
    insert = ClickHouseWarehouse.insert

    def traced_insert(self: Any, table: str, rows: Any, dedup_token: str | None = None) -> None:
        t0 = time.time()
        insert(self, table, rows, dedup_token)
        TRACE[f"insert:{table}"].append((t0, time.time() - t0, rows.num_rows))
    ClickHouseWarehouse.insert = traced_insert  # type: ignore[method-assign]


_create_app = worker_mod.create_app


def create_app(settings: Any, runtime: Any = None) -> Any:
    app = _create_app(settings, runtime)
    live = app.tables["live_stats"]
    profiler: dict[str, Any] = {}

    @app.page("/bench/progress/")
    async def progress(web: Any, request: Any) -> Any:
        out = PROGRESS.as_dict()
        out["live_keys"] = len(live)
        out["agents"] = sorted(app.agents)
        out["threads"] = {str(t.native_id): t.name for t in threading.enumerate()}
        return web.json(out)

    @app.page("/bench/memory/")
    async def memory(web: Any, request: Any) -> Any:
        """Python-level view of the worker's memory (gc.collect() first: a few ms to a second)."""
        import gc
        import json as _json

        collected = gc.collect()
        values = list(live.values())
        objects = gc.get_objects()
        types = collections.Counter(type(o).__name__ for o in objects)
        del objects
        return web.json({"gc_collected": collected, "gc_objects": sum(types.values()), "live_keys": len(values),
                         "types": dict(types.most_common(40)),
                         "live_json_bytes": sum(len(_json.dumps(v)) for v in values),
                         "threads": threading.active_count()})

    @app.page("/bench/trace/")
    async def trace(web: Any, request: Any) -> Any:
        """Calls of the traced functions (BENCH_TRACE=1): [start, seconds, batch size]; cleared on read."""
        out = {k: list(v) for k, v in TRACE.items()}
        TRACE.clear()
        return web.json(out)

    @app.page("/bench/sample/start/")
    async def sample_start(web: Any, request: Any) -> Any:
        profiler["s"] = Sampler(float(request.query.get("interval", "0.005")))
        return web.json({"sampling": True})

    @app.page("/bench/sample/stop/")
    async def sample_stop(web: Any, request: Any) -> Any:
        sampler = profiler.pop("s", None)
        if sampler is None:
            return web.json({"sampling": False}, status=409)
        return web.json(sampler.result(int(request.query.get("top", "25"))))

    @app.page("/bench/profile/start/")
    async def profile_start(web: Any, request: Any) -> Any:
        prof = cProfile.Profile()
        profiler["p"] = prof
        prof.enable()
        return web.json({"profiling": True})

    @app.page("/bench/profile/stop/")
    async def profile_stop(web: Any, request: Any) -> Any:
        prof = profiler.pop("p", None)
        if prof is None:
            return web.json({"profiling": False}, status=409)
        prof.disable()
        out = request.query.get("out") or str(Path(os.environ.get("SENTINEL_DATA_DIR", ".")) / "worker.pstats")
        prof.dump_stats(out)
        return web.json({"written": out})

    return app


def main() -> None:
    tally_mod.LiveStats = CountingLiveStats  # the tally stage looks the name up per new or decoded state
    ClickHouseWarehouse.insert = _counting_insert  # type: ignore[method-assign]
    worker_mod.create_app = create_app
    if os.environ.get("BENCH_SWITCH_INTERVAL"):  # experiment: GIL hand-off interval (Python default 0.005 s)
        sys.setswitchinterval(float(os.environ["BENCH_SWITCH_INTERVAL"]))
    if os.environ.get("BENCH_TRACE"):
        from worker.stages.gate import Gate
        from worker.stages.scoring import ScoreStage

        ScoreStage.__call__ = _traced("score", ScoreStage.__call__)  # type: ignore[method-assign]
        Gate.screen = _traced_async("gate.screen", Gate.screen)  # type: ignore[method-assign]
        if os.environ["BENCH_TRACE"] == "2":
            _trace_stages()
    from config.settings import load_settings

    settings = load_settings()
    import logging

    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    worker_mod.run_worker(settings)


if __name__ == "__main__":
    main()
