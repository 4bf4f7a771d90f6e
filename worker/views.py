"""The worker's web views (bound to localhost by default).

    /sentinel/ready/      200 once this worker holds input partitions and is not rebalancing
    /sentinel/stats/      counters of this worker (JSON)
    /sentinel/live/       p50/p95/p99 latency (end to end and parts), jobs, GPU-seconds and cost
                          per model x niche over ?window=1h|1d|all (default 1h), JSON;
                          ?scope=group merges every registered worker's states
    /sentinel/sketches/   the serialized live states behind /live (to merge across workers)
    /sentinel/dashboard/  a live HTML page that redraws a chart from /live every 5 s
    /sentinel/worker/     this worker: id, URL, pid, input partitions held and their lag, counters
    /sentinel/workers/    every registered worker's /sentinel/worker/ (the dashboard's Workers table)
    /metrics              Prometheus exposition (partitions held and consumer lag read per scrape)
    /sentinel/query/      POST, bearer token: read-only SQL on the embedded store (Arrow IPC)

Views read only the table partitions this worker holds now; ``/sentinel/live/?scope=group`` (what
the dashboard shows) merges in every registered worker's /sketches (the states are mergeable).
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Awaitable, Callable

import faust

from sentinel.latency import LiveStats
from config.settings import Settings
from contracts.topics import JOBS_COMPLETED
from sentinel.buckets import live_snapshot
from worker.membership import Membership, read_membership, registered_workers, worker_document
from worker.metrics import CONTENT_TYPE
from worker.peers import gather_sketches, gather_workers
from worker.stages.live_index import LiveIndex
from warehouse.client import arrow_to_ipc

WINDOWS = {"5m": 300, "1h": 3600, "1d": 86400, "all": None}
DASHBOARD = Path(__file__).resolve().parent / "dashboard.html"


def _since(window: str, now: float) -> float:
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {sorted(WINDOWS)}")
    seconds = WINDOWS[window]
    return float("-inf") if seconds is None else now - seconds


def register_views(app: faust.App, settings: Settings, rt: Callable[[], Any], live: Any,
                   is_input: Callable[[str], bool] = lambda topic: False) -> None:
    """``is_input`` names the topics whose partitions get a consumer lag (the agents' inputs)."""
    index = LiveIndex(live, settings.live_bucket_s)

    def held(since: float = float("-inf")) -> list[tuple[str, Any]]:
        """The table's keys of the source partitions this worker holds now, of buckets that end
        after ``since``: a partition that moved to another worker leaves its keys in this
        worker's memory, no longer updated here."""
        return index.items({tp.partition for tp in app.consumer.assignment() if tp.topic == JOBS_COMPLETED}, since)

    def snapshot(window: str, now: float | None = None) -> dict[tuple[str, str], LiveStats]:
        since = _since(window, time.time() if now is None else now)
        return live_snapshot(held(since), since)

    rt_metrics = None

    def metrics():
        nonlocal rt_metrics
        if rt_metrics is None:
            rt_metrics = rt().metrics
            rt_metrics.watch_latency(lambda: {k: v.compute() for k, v in snapshot("1h").items()})
        return rt_metrics

    refresh = membership_reader(app, settings, metrics, is_input)
    register_membership_views(app, settings, refresh)

    @app.page("/sentinel/ready/")
    async def ready(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        assigned = [tp for tp in app.consumer.assignment() if tp.topic == JOBS_COMPLETED]
        ok = bool(assigned) and not app.rebalancing
        return web.json({"ready": ok, "partitions": sorted(tp.partition for tp in assigned),
                         "scorer_version": settings.scorer_version}, status=200 if ok else 503)

    @app.page("/sentinel/stats/")
    async def stats(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return web.json((await refresh())[0].summary())

    register_live_views(app, settings, held)

    @app.page("/sentinel/dashboard/")
    async def dashboard(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return web.html(DASHBOARD.read_text())

    @app.page("/metrics")
    async def prometheus(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        # aiohttp refuses a charset inside content_type=, so the full header goes in headers
        return web.bytes((await refresh())[0].exposition(), headers={"Content-Type": CONTENT_TYPE})

    @app.page("/sentinel/query/")
    class Query(faust.web.View):
        async def post(self, request: faust.web.Request) -> faust.web.Response:
            r = rt()
            if not r.token or request.headers.get("Authorization", "") != f"Bearer {r.token}":
                return self.error(401, "missing or wrong token")
            body = await request.json()
            loop = asyncio.get_running_loop()

            def run() -> Any:
                r.warehouse.check_single_statement(body["sql"])
                return r.warehouse.query(body["sql"], body.get("parameters") or {})

            try:
                table = await loop.run_in_executor(r.sink_pool, run)
            except Exception as exc:  # report the database's own message to the caller
                return self.error(400, f"{type(exc).__name__}: {exc}")
            return self.bytes(arrow_to_ipc(table), content_type="application/vnd.apache.arrow.stream")


def register_live_views(app: faust.App, settings: Settings, held: Callable[..., list[tuple[str, Any]]]) -> None:
    """``/sentinel/live/`` and ``/sentinel/sketches/`` over ``held()``: the live states of the
    partitions this worker holds now."""
    peers_pool = ThreadPoolExecutor(4, "live-peers")

    @app.page("/sentinel/live/")
    async def live_view(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        """?scope=worker (default): this worker's partitions; ?scope=group: merged with the live
        states of every registered worker (the states are mergeable; ``missing`` names the
        workers that did not answer)."""
        window, scope = request.query.get("window", "1h"), request.query.get("scope", "worker")
        if scope not in ("worker", "group"):
            return web.error(400, "scope must be worker or group")
        try:
            since = _since(window, time.time())
        except ValueError as exc:
            return web.error(400, str(exc))
        items, missing = held(since), []
        if scope == "group":
            loop = asyncio.get_running_loop()
            peers = await loop.run_in_executor(peers_pool, registered_workers, settings.data_dir)
            others, missing = await gather_sketches(settings.worker_id, peers, peers_pool)
            items += others
        try:
            merged = live_snapshot(items, since)
        except ValueError as exc:  # a peer's key that does not parse
            return web.error(400, str(exc))
        rows = [{"model": m, "niche": n, **state.compute()} for (m, n), state in sorted(merged.items())]
        return web.json({"window": window, "scope": scope, "missing": missing, "bucket_s": settings.live_bucket_s,
                         "generated_at": time.time(), "rows": rows})

    @app.page("/sentinel/sketches/")
    async def sketches(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return web.json(dict(held()))


def membership_reader(app: faust.App, settings: Settings, metrics: Callable[[], Any],
                      is_input: Callable[[str], bool]) -> Callable[[], Awaitable[tuple[Any, Membership]]]:
    """A coroutine function reading what this worker holds now (worker/membership.py) into its
    metrics (series of revoked partitions dropped) and returning (metrics, membership)."""
    async def refresh() -> tuple[Any, Membership]:
        m, now = metrics(), await read_membership(app.consumer, is_input)
        m.set_membership(settings.worker_id, now.partitions, now.flat_lag(), now.topic_partitions)
        return m, now

    return refresh


def register_membership_views(app: faust.App, settings: Settings,
                              refresh: Callable[[], Awaitable[tuple[Any, Membership]]]) -> None:
    """``/sentinel/worker/`` (this worker) and ``/sentinel/workers/`` (every registered worker,
    peers asked in threads: worker/peers.py); ``refresh`` refreshes and returns (metrics, membership)."""
    url = f"http://{settings.web_host}:{settings.web_port}"
    peers_pool = ThreadPoolExecutor(4, "peers")

    async def own_document() -> dict[str, Any]:
        m, now = await refresh()
        return worker_document(settings.worker_id, url, now, m.summary())

    @app.page("/sentinel/worker/")
    async def worker_view(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return web.json(await own_document())

    @app.page("/sentinel/workers/")
    async def workers_view(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        loop = asyncio.get_running_loop()
        peers = await loop.run_in_executor(peers_pool, registered_workers, settings.data_dir)
        return web.json(await gather_workers(await own_document(), peers, peers_pool))
