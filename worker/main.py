"""Run one Faust worker: open the warehouse (migrated), load the scorer, start the app.

The worker is designed to be killed: everything it writes is idempotent and everything it
consumes is committed only after it is stored, so a restart simply resumes.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable

import faust

import sql as sql_files
from config.settings import Settings
from contracts.codec import use_schema_dir
from sentinel.clip import ClipExtractor
from sentinel.scoring import BatchScorer
from warehouse.client import ClickHouseWarehouse, RemoteWarehouse, Warehouse, WarehouseError, migrate
from warehouse.owner import claim, live_owner, release
from warehouse.pricing import publish_pricing
from warehouse.window import Window
from worker import membership
from worker.app import create_app
from worker.delivery.retry import Backoff
from worker.runtime import Runtime, towers_pool
from worker.stages.gate import Catalog

log = logging.getLogger(__name__)


def open_warehouse(settings: Settings) -> tuple[Warehouse, bool]:
    """The worker's warehouse and whether this process owns it.

    A worker of a store role (``use_store``) reaches an embedded path through the store, found
    by the owner file (a store restarted elsewhere is found again), and a server directly; a
    lone worker opens the warehouse itself. An embedded path owned by another process is refused
    (chDB allows one process per path)."""
    chdb_path = settings.chdb_path
    if settings.use_store:
        if chdb_path is None:
            return ClickHouseWarehouse(settings.dsn), False
        return RemoteWarehouse.of_store(chdb_path), False
    owner = live_owner(chdb_path) if chdb_path is not None else None
    if owner is not None and owner.pid != os.getpid():
        raise WarehouseError(
            f"the embedded store {chdb_path} is owned by another process ({owner.role}, pid {owner.pid}); for several "
            "workers start `sentinel store` first and the workers with SENTINEL_USE_STORE=1 "
            "(`sentinel up --workers N` does both)")
    return ClickHouseWarehouse(settings.dsn, outage_switch=settings.faults_dir / "clickhouse_down"), True


STORE_WAIT_S = 120.0  # a worker (re)started while its store restarts waits this long for it


def gpu_types(warehouse: Warehouse, wait_s: float) -> list[str]:
    """The GPU types in the event log; an unreachable store is waited for up to ``wait_s``."""
    deadline, backoff = time.monotonic() + wait_s, Backoff()
    while True:
        try:
            return warehouse.query(sql_files.report("gpu_types"), Window().params()).column("gpu_type").to_pylist()
        except WarehouseError as exc:
            if time.monotonic() + backoff.delay > deadline:
                raise
            log.warning("waiting for the store (%s); retrying in %.1fs", exc, backoff.delay)
            time.sleep(backoff.next())


def open_runtime(settings: Settings) -> Runtime:
    pricing = settings.pricing()
    drift_config = settings.drift_config()
    catalog = Catalog.from_settings(settings)
    warehouse, owned = open_warehouse(settings)
    try:
        if owned:
            applied = migrate(warehouse)
            if applied:
                log.info("applied migrations %s", applied)
        # Fail at startup, not with a silent zero, when history has GPU types the prices miss.
        known = gpu_types(warehouse, wait_s=0 if owned else STORE_WAIT_S)
        pricing.require_gpu_types(known)
        if owned:
            publish_pricing(warehouse, pricing)  # for dashboards (sentinel.pricing); a store role does it too
        scorer = towers = None
        if settings.score_enabled:
            extractor = ClipExtractor(settings.clip_spec)
            towers = towers_pool(settings, extractor.image_tower_params)
            scorer = BatchScorer(extractor, towers)
    except BaseException:
        warehouse.close()
        raise
    return Runtime(settings=settings, warehouse=warehouse, scorer=scorer, pricing=pricing, drift_config=drift_config,
                   catalog=catalog, owns_warehouse=owned, towers_pool=towers)


def run_worker(settings: Settings, snapshot: Callable[[Any, Any, Settings], int] | None = None) -> None:
    """Blocks until the worker is stopped (SIGTERM/SIGINT). ``snapshot(warehouse, pricing,
    settings)`` takes the scheduled benchmark snapshots (reports.snapshots.take_due)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if settings.schema_dir:
        use_schema_dir(settings.schema_dir)
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)  # Faust makes only its own level
    runtime = open_runtime(settings)
    if snapshot is not None and runtime.owns_warehouse:  # else the store role takes them
        runtime.snapshot = lambda: snapshot(runtime.warehouse, runtime.pricing, settings)
    app = create_app(settings, runtime)
    chdb_path = settings.chdb_path if runtime.owns_warehouse else None
    if chdb_path is not None:
        runtime.token = claim(chdb_path, f"http://{settings.web_host}:{settings.web_port}").token
    else:  # a worker of a store serves the rating page and query view with the store's token
        store = live_owner(settings.chdb_path) if settings.chdb_path is not None else None
        runtime.token = os.environ.get("SENTINEL_QUERY_TOKEN", "") or (store.token if store else "")
    try:
        membership.announce(settings.data_dir, settings.worker_id, f"http://{settings.web_host}:{settings.web_port}")
        worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True, redirect_stdouts=False)
        worker.execute_from_commandline()
    finally:
        membership.withdraw(settings.data_dir, settings.worker_id)
        if chdb_path is not None:
            release(chdb_path)
        runtime.close()
