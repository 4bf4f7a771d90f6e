"""The one agent on ``jobs.scored``: each record decoded once, then stored (``sentinel.scores``)
and fed to the drift detectors; alerts are acknowledged before the batch counts as finished.

Each (job id, scorer version) is inserted once: the jobs agent sends a JobScored again when it
re-processes a job (delivery is at-least-once), and this agent re-reads after a crash in batches
cut differently (another insert dedup token), so the store skips pairs already stored (one
batched lookup, ``sql/reports/stored_scores.sql``, for pairs not in its bounded memory) and
repeats within a batch. The rollups fed from ``sentinel.scores`` count every row inserted."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any, Iterable, Sequence

import sql as sql_files

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

Pair = tuple[str, str]  # (job id, scorer version)


class StoredScores:
    """The (job id, scorer version) pairs stored in ``sentinel.scores``: this process's inserts
    (bounded, oldest forgotten first) and, for the rest, a lookup in the warehouse."""

    def __init__(self, runtime: Any, max_pairs: int = 200_000) -> None:
        self.rt = runtime  # its warehouse, read at each lookup
        self.max_pairs = max_pairs
        self._mine: OrderedDict[Pair, None] = OrderedDict()

    def stored(self, pairs: Sequence[Pair]) -> set[Pair]:
        """Those of ``pairs`` already stored (may raise while the warehouse is unavailable)."""
        found = {p for p in pairs if p in self._mine}
        ask = sorted(set(pairs) - found)
        if ask:
            table = self.rt.warehouse.query(sql_files.report("stored_scores"),
                                         {"job_ids": sorted({j for j, _ in ask}),
                                          "scorer_versions": sorted({v for _, v in ask})})
            wanted = set(ask)
            found |= {p for p in zip(table.column("job_id").to_pylist(), table.column("scorer_version").to_pylist())
                      if p in wanted}
        return found

    def add(self, pairs: Iterable[Pair]) -> None:
        for p in pairs:
            self._mine[p] = None
            self._mine.move_to_end(p)
            if len(self._mine) > self.max_pairs:
                self._mine.popitem(last=False)


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
        self.stored = StoredScores(runtime)

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
        """Insert the scores not stored yet, each pair once (the first of a batch's repeats)."""
        if not decoded:
            return
        loop = asyncio.get_running_loop()
        pairs = [(value["job_id"], value["scorer_version"]) for _, value in decoded]
        done = await until_done(lambda: loop.run_in_executor(self.rt.sink_pool, self.stored.stored, pairs),
                                "looking up stored scores", self.rt.metrics.sink_retries.inc)
        fresh: dict[Pair, tuple[Any, dict]] = {}
        for pair, item in zip(pairs, decoded):
            if pair not in done:
                fresh.setdefault(pair, item)
        if not fresh:
            return
        table = rows.score_rows([value for _, value in fresh.values()])
        token = dedup_token("scores", [(ev.message.partition, ev.message.offset) for ev, _ in fresh.values()])
        warehouse = self.rt.warehouse
        await write_until_stored(self.rt.sink_pool, lambda: warehouse.insert("sentinel.scores", table, token),
                                 f"{len(fresh)} scores", self.rt.metrics.sink_retries.inc, fence)
        self.stored.add(fresh)
        self.rt.metrics.rows_stored.labels("scores").inc(len(fresh))

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
