"""What the agents need that is not Kafka, opened once per worker process (worker/main.py)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from config.settings import Settings
from sentinel.clip import cpu_cores, cpu_threads
from sentinel.cost import Pricing
from sentinel.cusum import DriftConfig
from sentinel.scoring import BatchScorer
from warehouse.client import Warehouse
from warehouse.moments import MomentStates
from worker.metrics import WorkerMetrics
from worker.stages.gate import Catalog


AUTO_TOWERS_MIN_PARAMS = 10_000_000  # image-tower parameters from which "auto" runs the towers side by side


def towers_pool(settings: Settings, image_tower_params: int) -> ThreadPoolExecutor | None:
    """The scorer's second thread (text tower, reference images) when scoring runs on a CPU with
    2+ cores and ``parallel_towers`` asks for it ("auto": an image tower of at least
    :data:`AUTO_TOWERS_MIN_PARAMS` parameters, and twice torch's threads fit the cores); else
    None (one thread, the towers in turn)."""
    mode = settings.parallel_towers
    if mode not in ("auto", "on") or not settings.score_enabled or not settings.device.startswith("cpu"):
        return None
    cores = cpu_cores()
    if mode == "auto" and (image_tower_params < AUTO_TOWERS_MIN_PARAMS
                           or 2 * cpu_threads(settings.torch_threads) > cores):
        return None  # torch's thread count applies in each tower's thread: two teams must fit the cores
    return _pool("towers") if cores >= 2 else None


def _pool(name: str) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(1, name)


@dataclass
class Runtime:
    """One thread each for scoring, the gate and the sinks: model inference, image decoding and
    ClickHouse calls never run on the event loop."""

    settings: Settings
    warehouse: Warehouse  # opened here, or the store role's (warehouse.client.RemoteWarehouse)
    scorer: BatchScorer | None  # None: a metadata-only worker (score_enabled off)
    pricing: Pricing
    token: str = ""
    score_pool: ThreadPoolExecutor = field(default_factory=lambda: _pool("score"))
    towers_pool: ThreadPoolExecutor | None = None  # the scorer's second tower thread (BatchScorer), if any
    sink_pool: ThreadPoolExecutor = field(default_factory=lambda: _pool("sink"))
    gate_pool: ThreadPoolExecutor = field(default_factory=lambda: _pool("gate"))
    metrics: WorkerMetrics = field(default_factory=WorkerMetrics)
    drift_config: DriftConfig = field(default_factory=DriftConfig)
    moments: MomentStates | None = None
    catalog: Catalog | None = None  # known models and niches (None: any)
    # the scheduled benchmark snapshots (blocking; rows written), handed in by the CLI: the
    # report code is a sibling layer the worker does not import. None: no snapshot timer
    snapshot: Callable[[], int] | None = None
    owns_warehouse: bool = True  # False: a scoring worker of a store role (worker/store_role.py)

    def __post_init__(self) -> None:
        if self.moments is None:
            self.moments = MomentStates(self.warehouse, self.settings.moments_bucket_s,
                                        compact_every=self.settings.moments_compact_events)

    def close(self) -> None:
        for pool in (self.score_pool, self.towers_pool, self.gate_pool, self.sink_pool):
            if pool is not None:
                pool.shutdown(wait=True)
        self.warehouse.close()
