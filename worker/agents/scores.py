"""The one agent on ``jobs.scored``: each record decoded once, then stored (``sentinel.scores``)
and fed to the drift detectors; alerts are acknowledged before the batch counts as finished."""

from __future__ import annotations

import asyncio
from typing import Any, Sequence

from contracts.errors import DecodeError
from contracts.topics import JOBS_SCORED
from warehouse import rows
from worker import codecs
from worker.agents.base import BatchAgent
from worker.delivery.commit import CommitProtocol
from worker.delivery.retry import until_done
from worker.delivery.sends import Outgoing, dedup_token, send_delivered, write_until_stored
from worker.stages.dead_letters import DeadLetters, rejected_event
from worker.stages.drift import DriftStage
from worker.stages.fid_drift import FidDriftStage

NAME = "scores"


class ScoresAgent(BatchAgent):
    name = NAME
    topic = JOBS_SCORED

    def __init__(self, runtime: Any, drift: DriftStage, letters: DeadLetters, alerts_out: Any,
                 protocol: CommitProtocol, batch_size: int, batch_wait_s: float,
                 fid_drift: FidDriftStage | None = None) -> None:
        super().__init__(runtime, protocol, batch_size, batch_wait_s)
        self.drift = drift
        self.fid_drift = fid_drift
        self.letters = letters
        self.alerts_out = alerts_out

    async def handle(self, events: Sequence[Any]) -> None:
        decoded, rejected = [], []
        for ev in events:
            try:
                decoded.append((ev, codecs.decode("JobScored", ev.value)))
            except DecodeError as exc:
                rejected.append(rejected_event(ev, exc))
        fence = self.fence(events)
        await asyncio.gather(self.letters.send(rejected), self.store(decoded, fence), self.detect(decoded, fence))

    async def store(self, decoded: list[tuple[Any, dict]], fence: Any = None) -> None:
        if not decoded:
            return
        table = rows.score_rows([value for _, value in decoded])
        token = dedup_token("scores", [(ev.message.partition, ev.message.offset) for ev, _ in decoded])
        warehouse = self.rt.warehouse
        await write_until_stored(self.rt.sink_pool, lambda: warehouse.insert("sentinel.scores", table, token),
                                 f"{len(decoded)} scores", self.rt.metrics.sink_retries.inc, fence)
        self.rt.metrics.rows_stored.labels("scores").inc(len(decoded))

    async def detect(self, decoded: list[tuple[Any, dict]], fence: Any = None) -> None:
        """CLIP (CUSUM) and FID (windowed, from the stored moments of closed buckets) detectors:
        their alerts are delivered before the detectors are written."""
        fid = self.fid_drift
        try:
            alerts, changed = self.drift.update(decoded)
            fid_changed = fid.observe(decoded) if fid is not None else {}
            if fid_changed:
                loop = asyncio.get_running_loop()
                inputs = await until_done(lambda: loop.run_in_executor(self.rt.sink_pool, fid.fetch, fid_changed),
                                          "reading FID moments", self.rt.metrics.sink_retries.inc)
                # FID (an eigen-decomposition per window, D x D) off the event loop too
                alerts += await loop.run_in_executor(self.rt.sink_pool, fid.apply, fid_changed, inputs)
            await send_delivered(self.alerts_out, [Outgoing(a["alert_id"].encode(), a) for a in alerts], "alerts",
                                 self.rt.metrics.send_retries.inc)
            if fence is not None:
                fence()  # detector states go to the table of partitions this worker still holds only
            self.drift.write(changed)
            if fid is not None:
                fid.write(fid_changed)
        except BaseException:
            self.drift.forget()  # detectors may be half-updated in memory: decode from the table again
            if fid is not None:
                fid.forget()
            raise
