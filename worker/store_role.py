"""The store role (``sentinel store``): the process that owns the warehouse.

With several workers, one process opens the warehouse: it migrates the schema, publishes the
prices, takes the scheduled benchmark snapshots and, for an embedded chDB path (one process per
path), serves everyone else's reads and writes over HTTP (warehouse/store_server.py), announced
in the owner file beside the path. Scoring workers then never open the warehouse themselves:
they find the store through the owner file (worker/main.py). Against a ClickHouse server the
workers connect to the server directly and the store role keeps the schema and the snapshots.

Killing it loses nothing: the workers see an outage, back off and retry their writes (each
idempotent), and a restarted store claims the path again (same token, found by the owner file).
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any, Callable

import sql as sql_files
from config.settings import Settings
from warehouse.client import ClickHouseWarehouse, WarehouseError, migrate
from warehouse.owner import claim, live_owner, release
from warehouse.pricing import publish_pricing
from warehouse.store_server import StoreServer
from warehouse.window import Window

log = logging.getLogger(__name__)

Snapshot = Callable[[Any, Any, Settings], int]


def open_store(settings: Settings) -> ClickHouseWarehouse:
    """The warehouse, migrated, its GPU types priced and the prices published (for dashboards)."""
    warehouse = ClickHouseWarehouse(settings.dsn, outage_switch=settings.faults_dir / "clickhouse_down")
    try:
        applied = migrate(warehouse)
        if applied:
            log.info("applied migrations %s", applied)
        pricing = settings.pricing()
        known = warehouse.query(sql_files.report("gpu_types"), Window().params()).column("gpu_type").to_pylist()
        pricing.require_gpu_types(known)  # fail at start, not with a silent zero
        publish_pricing(warehouse, pricing)
    except BaseException:
        warehouse.close()
        raise
    return warehouse


def run_store(settings: Settings, snapshot: Snapshot | None = None, ready: Callable[[str], None] | None = None) -> None:
    """Serve until SIGTERM/SIGINT. ``snapshot(warehouse, pricing, settings)`` takes the due
    benchmark snapshots every ``snapshot_interval_s``; ``ready(url)`` is told the served URL."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    chdb_path = settings.chdb_path
    owner = live_owner(chdb_path) if chdb_path is not None else None
    if owner is not None:  # chDB would refuse the second process with an opaque error
        raise WarehouseError(f"{chdb_path} is already owned by a {owner.role} (pid {owner.pid}, {owner.url}); "
                             "one store per data path")
    warehouse = open_store(settings)
    server = StoreServer(warehouse, token="", host=settings.web_host, port=settings.store_port,
                         serve_data=chdb_path is not None)
    owner = claim(chdb_path, server.url, role="store", keep_token=True) if chdb_path is not None else None
    server.token = owner.token if owner else ""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server.start_in_thread()
    log.info("store serving %s at %s", settings.dsn if chdb_path is None else chdb_path, server.url)
    if ready is not None:
        ready(server.url)
    try:
        _snapshots_until(stop, warehouse, settings, snapshot)
    finally:
        server.shutdown()
        if chdb_path is not None:
            release(chdb_path, keep_token=True)
        warehouse.close()


def _snapshots_until(stop: threading.Event, warehouse: ClickHouseWarehouse, settings: Settings,
                     snapshot: Snapshot | None) -> None:
    """Every ``snapshot_interval_s`` the due snapshots (a failure is logged; the next tick retries)."""
    if snapshot is None or settings.snapshot_interval_s <= 0:
        stop.wait()
        return
    pricing = settings.pricing()
    while not stop.wait(settings.snapshot_interval_s):
        try:
            log.info("benchmark snapshots: %d rows", snapshot(warehouse, pricing, settings))
        except Exception as exc:  # the warehouse may be down: the next tick retries
            log.warning("benchmark snapshots failed (%s: %s)", type(exc).__name__, exc)
