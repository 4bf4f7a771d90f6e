"""The one agent on ``jobs.completed``: each batch is screened once (triage + gate) and handed
to the stages. Three steps overlap: batch N+1 is screened (gate thread) while batch N is scored
(score thread) and the batches before are sent and stored (sink thread), so image decoding, the
CLIP towers and ClickHouse work at the same time. Each step takes its batches in log order. A
batch the scorer would need long for (a big model) is cut into slices first
(:class:`ScoreSlices`), so its outputs start early and overlap its scoring. Scored batches that
wait for the output step go out merged (``Merging``): under a backlog one insert per table and
one changelog write per key serve several batches.

    screen -> score (score thread) -> FID moments -> dead letters, jobs.scored, jobs + images -> tallies
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Sequence

from contracts.errors import InvalidEvent
from contracts.topics import JOBS_COMPLETED
from worker.delivery.commit import CommitProtocol
from worker.delivery.retry import Fenced
from worker.delivery.sends import Merging, OneBehind, Outgoing, send_delivered
from worker.stages.dead_letters import DeadLetters, rejected_event
from worker.stages.screen import Screen, Screened
from worker.stages.scoring import ScoreStage
from worker.stages.sinks import ArchiveStage, MomentsStage
from worker.stages.tally import TallyStage
from worker.stages.triage import Accepted

log = logging.getLogger(__name__)

NAME = "jobs"
MERGE_MAX_BYTES = 64 << 20  # record values per merged delivery: inline images keep it to a batch or two


@dataclass
class JobStages:
    screen: Screen
    score: ScoreStage | None  # None: a metadata-only worker (no scores, no moments)
    letters: DeadLetters
    scores_out: Any  # the jobs.scored topic
    moments: MomentsStage
    archive: ArchiveStage
    tally: TallyStage


class ScoreSlices:
    """How many records of a jobs batch go to the scorer at once: about ``target_s`` seconds of
    its measured rate (a moving average of seconds per scored job), at least ``floor`` (the
    encoder batch), at most the whole batch. The tiny CLIP takes a whole sink batch (one insert,
    one changelog write per key); ViT-B-32 on a CPU core about one encoder batch, so a backlog's
    first outputs leave after seconds, not after the whole batch is scored. ``target_s`` 0 (a
    worker that does not score), or no rate measured yet: whole batches, so a restart does not
    begin with many small inserts."""

    def __init__(self, target_s: float, floor: int, alpha: float = 0.3) -> None:
        self.target_s = target_s
        self.floor = max(1, floor)
        self.alpha = alpha
        self.per_job_s: float | None = None

    def observe(self, jobs: int, seconds: float) -> None:
        if jobs <= 0:
            return
        value = seconds / jobs
        self.per_job_s = value if self.per_job_s is None else self.alpha * value + (1 - self.alpha) * self.per_job_s

    def size(self) -> int | None:
        """Records per slice (None: the whole batch)."""
        if self.target_s <= 0 or not self.per_job_s:
            return None
        return max(self.floor, int(self.target_s / self.per_job_s))

    def cut(self, events: Sequence[Any]) -> list[list[Any]]:
        """``events`` in log order, each source offset once (Faust can hand a record twice), in slices."""
        seen: set[tuple[int, int]] = set()
        unique = []
        for ev in events:
            key = (ev.message.partition, ev.message.offset)
            if key not in seen:
                seen.add(key)
                unique.append(ev)
        size = self.size() or len(unique) or 1
        return [unique[start:start + size] for start in range(0, len(unique), size)]


@dataclass
class Output:
    """A scored batch (or slice) on its way out; several merge into one delivery."""
    events: list[Any]
    screened: Screened
    scored: list[dict]  # one per kept job not in ``bad``, in order
    bad: list[tuple[Accepted, InvalidEvent]]
    received: float  # time.monotonic() when its Faust batch arrived
    generation: int = 0  # the commit protocol's restarts when it was read (re-reads come after one)

    @classmethod
    def merge(cls, outputs: Sequence["Output"]) -> "Output":
        """One delivery for several outputs, each source offset once (the first copy: a re-read
        may bring a record again while its first copy waits here), and a record deferred by one
        output but judged by another counts as judged."""
        if len(outputs) == 1:
            return outputs[0]
        received, generation = min(o.received for o in outputs), outputs[0].generation
        offsets = [{(ev.message.partition, ev.message.offset) for ev in o.events} for o in outputs]
        if sum(map(len, offsets)) == len(set().union(*offsets)):  # no record in two: one after the other
            merged = cls([], Screened(), [], [], received, generation)
            for o in outputs:
                merged.events += o.events
                merged.screened.kept += o.screened.kept
                merged.screened.rejected += o.screened.rejected
                merged.screened.deferred |= o.screened.deferred
                merged.scored += o.scored
                merged.bad += o.bad
            return merged
        merged = cls([], Screened(), [], [], received, generation)
        judged: set[tuple[int, int]] = set()
        for o in outputs:
            bad = {id(a): exc for a, exc in o.bad}
            values = iter(o.scored)
            for a in o.screened.kept:
                value = next(values, None) if o.scored and id(a) not in bad else None
                if (a.partition, a.offset) in judged:
                    continue
                judged.add((a.partition, a.offset))
                merged.screened.kept.append(a)
                if id(a) in bad:
                    merged.bad.append((a, bad[id(a)]))
                elif value is not None:
                    merged.scored.append(value)
            for r in o.screened.rejected:
                if (r.partition, r.offset) not in judged:
                    judged.add((r.partition, r.offset))
                    merged.screened.rejected.append(r)
        seen: set[tuple[int, int]] = set()
        for o in outputs:
            merged.screened.deferred |= o.screened.deferred
            for ev in o.events:
                key = (ev.message.partition, ev.message.offset)
                if key not in seen:
                    seen.add(key)
                    merged.events.append(ev)
        merged.screened.deferred -= judged
        return merged


class JobsAgent:
    def __init__(self, runtime: Any, stages: JobStages, protocol: CommitProtocol, batch_size: int,
                 batch_wait_s: float, slices: ScoreSlices | None = None, merge_events: int | None = None) -> None:
        self.rt = runtime
        self.stages = stages
        self.protocol = protocol
        self.batch_size = batch_size
        self.batch_wait_s = batch_wait_s
        self.slices = slices or ScoreSlices(0.0, 1)
        self.merge_events = merge_events or 4 * batch_size  # records per merged delivery

    async def __call__(self, stream: Any) -> None:
        screening, scoring = OneBehind(), OneBehind()
        # batches read after a seek to the committed offsets go out apart from those before it
        outputs: Merging[Output] = Merging(self.deliver_merged, self.merge_events, MERGE_MAX_BYTES,
                                           linger_s=self.batch_wait_s,
                                           together=lambda a, b: a.generation == b.generation)
        try:
            # Faust fills the next batch only while this loop waits in take_events: the batch is
            # screened in a task, so the next one is read meanwhile
            async for batch in stream.take_events(self.batch_size, within=self.batch_wait_s):
                read = (time.monotonic(), self.protocol.generation)
                self.rt.metrics.consumed.inc(len(batch))
                await screening.push(self.screen_then_score(batch, read, self.backlog(batch), scoring, outputs))
            await screening.drain()
            await scoring.drain()
            await outputs.drain()
        finally:
            screening.cancel()
            scoring.cancel()
            outputs.cancel()

    async def screen_then_score(self, batch: Sequence[Any], read: tuple[float, int], backlog: bool,
                                scoring: OneBehind, outputs: Merging[Output]) -> None:
        """Screen a batch slice by slice, each handed to the score step (after the slices before)."""
        slices = self.slices.cut(batch)
        for i, events in enumerate(slices):
            screened = await self.stages.screen(events)
            more = backlog or i < len(slices) - 1
            await scoring.push(self.score_then_deliver(events, screened, read, outputs, more))

    def backlog(self, batch: Sequence[Any]) -> bool:
        """Whether the log already holds records after ``batch`` (so its output may wait for them)."""
        newest: dict[int, int] = {}
        for ev in batch:
            newest[ev.message.partition] = max(ev.message.offset, newest.get(ev.message.partition, -1))
        return self.protocol.behind(JOBS_COMPLETED, newest) > 0

    async def score_then_deliver(self, events: Sequence[Any], screened: Screened, read: tuple[float, int],
                                 outputs: Merging[Output], more: bool = False) -> None:
        """Score a screened slice, then hand it to the output step (it goes after the slices before)."""
        try:
            started = time.perf_counter()
            scored, bad = await self.score(screened)
            if scored:
                self.slices.observe(len(scored), time.perf_counter() - started)
        finally:
            screened.pixels.clear()  # decoded pixels live for one slice's scoring only: two slices at most
        nbytes = sum(len(ev.value) if isinstance(ev.value, (bytes, bytearray)) else 0 for ev in events)
        await outputs.push(Output(list(events), screened, scored, bad, *read), len(events), nbytes, more)

    async def score(self, screened: Screened) -> tuple[list[dict], list[tuple[Accepted, InvalidEvent]]]:
        if self.stages.score is None or not screened.kept:
            return [], []
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.rt.score_pool, self.stages.score, screened.kept, screened.pixels)

    async def deliver_merged(self, outputs: list[Output]) -> None:
        out = Output.merge(outputs)
        await self.deliver(out.events, out.screened, out.scored, out.bad, out.received)

    async def deliver(self, events: Sequence[Any], screened: Screened, scored: list[dict],
                      bad: list[tuple[Accepted, InvalidEvent]], received: float) -> None:
        """Every output acknowledged or stored before the batch counts as finished; the
        processing lag is the time since the batch was ``received`` (``time.monotonic()``).
        A batch whose partitions moved to another worker meanwhile is dropped unfinished
        (``Fenced``): its writes stop, and the new owner reads it again."""
        fence = self.protocol.fence(JOBS_COMPLETED, {ev.message.partition for ev in events})
        try:
            await self._deliver(events, screened, scored, bad, fence)
        except Fenced as exc:
            log.info("jobs: dropped a batch of %d (%s)", len(events), exc)
            return
        self.rt.metrics.processing_lag.set(time.monotonic() - received)

    async def _deliver(self, events: Sequence[Any], screened: Screened, scored: list[dict],
                       bad: list[tuple[Accepted, InvalidEvent]], fence: Any) -> None:
        with self.protocol.finished(NAME, events) as unfinished:
            unfinished |= screened.deferred
            raw = {(ev.message.partition, ev.message.offset): ev for ev in events}
            bad_ids = {id(item) for item, _ in bad}
            kept = [a for a in screened.kept if id(a) not in bad_ids]
            rejected = screened.rejected + [rejected_event(raw[(a.partition, a.offset)], exc) for a, exc in bad]
            pairs = list(zip([a for a in kept if self.stages.score is not None], scored))
            # FID moments before the scores go out: a JobScored downstream means its moments are
            # stored (the FID drift detectors read them when its bucket closes)
            await self.stages.moments(pairs, fence)
            await asyncio.gather(self.send(rejected, scored), self.stages.archive(kept, fence))
            fence()  # the tally writes table values: only for partitions this worker still holds
            self.stages.tally(kept, raw)
            self.rt.metrics.scored.inc(len(scored))
            lag = event_time_lag_s(kept) if scored else None
            if lag is not None:
                self.rt.metrics.event_time_lag.set(lag)

    async def send(self, rejected: list, scored: list[dict]) -> None:
        await self.stages.letters.send(rejected)
        # keyed by model|niche: one partition sees all of a model x niche, in order (the drift detectors)
        await send_delivered(self.stages.scores_out, [Outgoing(f"{v['model_id']}|{v['niche']}".encode(), v)
                                                      for v in scored], "scores", self.rt.metrics.send_retries.inc)


def event_time_lag_s(kept: Sequence[Accepted]) -> float | None:
    """Seconds since the newest delivered_at of a batch (None: empty); event time, not processing."""
    if not kept:
        return None
    return (datetime.now(timezone.utc) - max(a.event["delivered_at"] for a in kept)).total_seconds()
