"""Second stage of a ``jobs.completed`` batch: triage, then the gate. Out come the jobs to
process (with their decoded pixels), the records to dead-letter, and the records deferred
because an earlier offset of their partition is not judged yet (those are read again).

Both run in the gate's thread in one hand-over, triage first (Avro decoding and the content
hashes are most of a metadata batch's Python): the event loop keeps fetching and delivering
meanwhile, and the screen waits for it once."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Sequence

from worker.delivery.retry import once
from worker.stages.gate import BAD, CONFLICT, OK, Gate, Pixels
from worker.stages.triage import Accepted, Rejected, Triage

log = logging.getLogger(__name__)

Seek = Callable[[int, int], Awaitable[None]]  # (partition, offset): read the partition again from there


@dataclass
class Screened:
    kept: list[Accepted] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    deferred: set[tuple[int, int]] = field(default_factory=set)
    pixels: dict[tuple[int, int], Pixels] = field(default_factory=dict)


class Rereads:
    """Re-read a partition from the offset the gate waits for, at most every ``every_s`` per
    offset: the deferred records come back after it, in order."""

    def __init__(self, gate: Gate, seek: Seek, every_s: float = 5.0, clock: Callable[[], float] | None = None) -> None:
        self.gate = gate
        self.seek = seek
        self.every_s = every_s
        self.clock = clock
        self.asked: dict[int, tuple[int, float]] = {}  # partition -> (offset, when) of the last re-read

    async def __call__(self, partition: int, count: int) -> None:
        offset = self.gate.next_offset(partition)
        now = (self.clock or asyncio.get_running_loop().time)()
        last = self.asked.get(partition)
        if offset is None or (last is not None and last[0] == offset and now - last[1] < self.every_s):
            return
        self.asked[partition] = (offset, now)
        log.warning("partition %d: %d records deferred past offset %d, not judged yet; re-reading from it",
                    partition, count, offset)
        await self.seek(partition, offset)


class Screen:
    def __init__(self, triage: Triage, gate: Gate | None, rereads: Rereads | None = None) -> None:
        self.triage = triage
        self.gate = gate
        self.rereads = rereads

    async def __call__(self, events: Sequence[Any]) -> Screened:
        if self.gate is None:
            accepted, rejected = self.triage(events)
            return Screened(kept=accepted, rejected=rejected)
        out = Screened()
        triaged = once(lambda: self.triage(events), "triage")
        gate = self.gate

        def work() -> list:  # one hop to the gate's thread for both (retried: triage once)
            accepted, rejected = triaged()
            before = [(b.partition, b.offset, None) for b in rejected]  # judged too: log order
            items = [(a.partition, a.offset, a.event, a.content_hash()) for a in accepted] + before
            return gate.judge(items, out.pixels) if items else []

        verdicts = await gate.run(work)
        accepted, rejected = triaged()
        out.rejected = list(rejected)
        deferred: dict[int, int] = {}
        for a, verdict in zip(accepted, verdicts):
            if verdict is None:
                out.deferred.add((a.partition, a.offset))
                deferred[a.partition] = deferred.get(a.partition, 0) + 1
            elif verdict.kind == OK:
                out.kept.append(a)
            elif verdict.kind in (BAD, CONFLICT):
                ev = _raw(events, a.partition, a.offset)
                out.rejected.append(Rejected(ev.value, ev.key, a.partition, a.offset, "InvalidEvent",
                                             verdict.reason, verdict.detail))
        if self.rereads is not None:
            for partition, count in deferred.items():
                await self.rereads(partition, count)
        return out


def _raw(events: Sequence[Any], partition: int, offset: int) -> Any:
    return next(ev for ev in events if ev.message.partition == partition and ev.message.offset == offset)
