"""Warehouse writes of a ``jobs.completed`` batch: the jobs and their images, and the FID
moment states the batch changed. Each waits out an unavailable ClickHouse (the retry rule) and
is idempotent: a kept job whose row is stored already is not inserted again (the gate's
:class:`~worker.stages.gate.StoredOffsets`), a retried insert is dropped by its dedup token
(from the source offsets), moments skip applied offsets."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Optional, Sequence

from warehouse import rows
from warehouse.moments import MomentInput
from worker.delivery.retry import once, until_done
from worker.delivery.sends import dedup_token, write_until_stored
from worker.stages.gate import StoredOffsets
from worker.stages.triage import Accepted

log = logging.getLogger(__name__)

Committed = Callable[[int], "int | None"]
Fence = Optional[Callable[[], None]]  # raises Fenced once the batch's partitions moved (CommitProtocol.fence)


class ArchiveStage:
    """``sentinel.jobs``, ``sentinel.job_images`` and ``sentinel.guard_checks`` rows of the kept jobs,
    each inserted once: delivery is at-least-once, and a re-read batch (after a crash, a rebalance,
    the hole healer) is cut differently, so its dedup token differs and ClickHouse would store a
    second copy that every materialized-view rollup counts. Kept jobs whose (partition, offset)
    is stored already (``stored``; None: insert all) are skipped; they are still scored and tallied.
    ``sentinel.jobs`` is written last: a row there means the job's images and checks are stored
    (a crash between the inserts re-inserts those, harmlessly: they are not rolled up)."""

    def __init__(self, runtime: Any, stored: StoredOffsets | None = None) -> None:
        self.rt = runtime
        self.stored = stored

    async def __call__(self, kept: Sequence[Accepted], fence: Fence = None) -> None:
        kept = await self.unstored(kept)
        if not kept:
            return
        keys = [(a.partition, a.offset) for a in kept]
        warehouse = self.rt.warehouse
        built = once(lambda: (rows.job_rows([(a.event, a.partition, a.offset, a.content_hash()) for a in kept]),
                              rows.image_rows([a.event for a in kept]),
                              rows.guard_check_rows([a.event for a in kept])),  # guard verdicts: a row per check
                     "building rows")

        def write() -> None:  # in the sink's thread: the rows are built there too, once
            jobs, images, checks = built()
            warehouse.insert("sentinel.job_images", images, dedup_token("job_images", keys))
            if checks.num_rows:
                warehouse.insert("sentinel.guard_checks", checks, dedup_token("guard_checks", keys))
            warehouse.insert("sentinel.jobs", jobs, dedup_token("jobs", keys))

        await write_until_stored(self.rt.sink_pool, write, f"{len(keys)} jobs", self.rt.metrics.sink_retries.inc, fence)
        if self.stored is not None:
            self.stored.add(keys)
        self.rt.metrics.rows_stored.labels("jobs").inc(len(keys))

    async def unstored(self, kept: Sequence[Accepted]) -> list[Accepted]:
        """The kept jobs without a stored row (a lookup waits out an unavailable warehouse)."""
        stored = self.stored
        if stored is None or not kept:
            return list(kept)
        items = [(a.partition, a.offset, a.event["job_id"]) for a in kept]
        loop = asyncio.get_running_loop()
        done = await until_done(lambda: loop.run_in_executor(self.rt.sink_pool, stored.stored, items),
                                "looking up stored jobs", self.rt.metrics.sink_retries.inc)
        if done:
            log.info("%d of %d kept jobs are stored already (re-read): not inserted again", len(done), len(kept))
        return [a for a in kept if (a.partition, a.offset) not in done]


class MomentsStage:
    """FID moments per model x niche x bucket x source partition (worker's state store:
    warehouse/moments.py): the batch's embeddings (and any state due) written before the batch
    counts as finished."""

    def __init__(self, runtime: Any, scorer_version: str, committed: Committed) -> None:
        self.rt = runtime
        self.scorer_version = scorer_version
        self.committed = committed

    async def __call__(self, scored: Sequence[tuple[Accepted, dict[str, Any]]], fence: Fence = None) -> None:
        # FID describes what customers received: a discarded guard attempt (delivered false) is left out
        scored = [(a, value) for a, value in scored if a.event.get("delivered") is not False]
        if not scored:
            return
        items = [MomentInput(a.event["model_id"], a.event["niche"], a.event["requested_at"], a.partition, a.offset,
                             value["embedding"]) for a, value in scored]
        loop = asyncio.get_running_loop()
        # loading a state may read the warehouse: an outage (or a restarting store) is waited out;
        # a failed load changes no state, so the retry is safe
        async def apply() -> Any:
            if fence is not None:
                fence()
            return await loop.run_in_executor(self.rt.sink_pool, self.rt.moments.apply, self.scorer_version, items,
                                              self.committed)

        writes = await until_done(apply, "FID moment states", self.rt.metrics.sink_retries.inc)
        if writes:
            await write_until_stored(self.rt.sink_pool, lambda: writes.write(self.rt.warehouse), writes.describe(),
                                     self.rt.metrics.sink_retries.inc, fence)
