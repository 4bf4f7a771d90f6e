"""Fixes for faust-streaming 0.15 behaviour that loses events (found by tests/integration/test_faults.py).

Installed once by :func:`streams.app.create_app`; each repairs one thing, described here.

1. **Uncommitted partitions are not rewound after a rebalance.** After every rebalance Faust
   drops what its fetcher had buffered and calls ``Consumer.perform_seek()`` to go back to the
   committed offsets. aiokafka's ``seek_to_committed`` only seeks partitions that *have* a
   committed offset; a partition without one keeps its fetch position, past the records just
   dropped, which are then never processed. Reproduced: a broker restart a few seconds after a
   fresh worker started (no commit had reached the broker yet) made the worker continue past
   hundreds of unprocessed events. Fixed: such partitions are sought to their earliest offset
   (what ``auto_offset_reset="earliest"`` means) and re-read (at-least-once; sinks and tallies
   are idempotent).

2. **A commit may skip offsets nobody acknowledged.** ``Consumer._new_offset`` picks the first
   run of consecutive acknowledged offsets and commits past it. It refuses only when that run
   starts *more than one* offset after the committed position (``min(acked) - committed > 1``)
   and does not check at all when there is no committed offset yet (or it is 0). So the event
   at the committed offset, or everything before the first acknowledged one of a new
   partition, could be committed without having been processed -- the "event at the committed
   offset skipped" and "restarted at the end of the log" symptoms seen in earlier runs.
   Fixed: nothing is committed unless the acknowledged run (or a known gap in the log) starts
   exactly at the committed position; for a partition without a commit, that position is the
   earliest offset it was rewound to.

3. **A redelivered record can go missing after a rebalance.** Around a broker restart Faust
   sometimes never hands re-fetched records to some (or all) agents while later records flow
   on (reproduced in about one run of four: one offset of 2,400 never reached any agent; in
   other runs the score agent missed a run of records that archive and tally received; after
   a SIGKILL restart the first record of a partition was processed by every agent but never
   counted as acknowledged). With fix 2 such a record holds the commit back instead of being
   committed unprocessed;
   :func:`install_hole_healer` notices a partition whose committed position is not acknowledged
   while later offsets are, and seeks that partition back to its committed offset, so every
   agent receives the records again (duplicates are idempotent). :class:`Contiguity` keeps
   offset-idempotent state (the tally table) from applying records past such a hole, which it
   could never apply later.
"""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger(__name__)

_INSTALLED = False


def install() -> None:
    global _INSTALLED
    if _INSTALLED:
        return
    from faust.transport.consumer import Consumer

    original_seek = Consumer.perform_seek
    original_new_offset = Consumer._new_offset

    async def perform_seek(self: Any) -> None:
        await original_seek(self)
        uncommitted = [tp for tp in self.assignment()
                       if not self._is_changelog_tp(tp) and self._committed_offset.get(tp) is None]
        if not uncommitted:
            return
        earliest = await self.earliest_offsets(*uncommitted)
        for tp, offset in earliest.items():
            await self.seek(tp, offset)
            # where the first commit must start (fix 2); not sent to the broker
            self._committed_offset[tp] = offset
        log.info("no committed offset for %s: rewound to the earliest offsets",
                 sorted(f"{tp.topic}[{tp.partition}]" for tp in uncommitted))

    def _new_offset(self: Any, tp: Any) -> int | None:
        acked = self._acked[tp]
        committed = self._committed_offset.get(tp)
        if acked and committed is not None:
            starts = [min(acked)] + [interval.begin for interval in self._gap[tp]]
            if min(starts) > committed:
                return None  # the offset at the committed position is not acknowledged yet
        return original_new_offset(self, tp)

    perform_seek.__doc__ = original_seek.__doc__
    Consumer.perform_seek = perform_seek  # type: ignore[method-assign]
    Consumer._new_offset = _new_offset  # type: ignore[method-assign]
    _INSTALLED = True


def _hole(consumer: Any, tp: Any) -> int | None:
    """The committed offset of ``tp`` if it is not acknowledged while later offsets are."""
    committed = consumer._committed_offset.get(tp)
    acked = consumer._acked.get(tp)
    if committed is None or not acked:
        return None
    starts = [min(acked)] + [interval.begin for interval in consumer._gap.get(tp, ())]
    return committed if min(starts) > committed else None


def install_hole_healer(app: Any, topics: set[str], interval_s: float = 2.0) -> None:
    """Seek a partition back to its committed offset when a hole at that offset outlives two
    checks (fix 3); re-reads of one hole back off from 4 s to 60 s (while ClickHouse is down
    the agents cannot acknowledge anything, and every re-read only queues duplicates). Costs a
    few dict lookups per assigned partition every ``interval_s``."""
    sighted: dict[Any, int] = {}  # partition -> hole seen at the last check
    backoff: dict[Any, tuple[float, float]] = {}  # partition -> (next re-read allowed at, delay)

    @app.timer(interval=interval_s, name="sentinel.hole_healer")
    async def heal() -> None:
        consumer = app.consumer
        if app.rebalancing:
            sighted.clear()
            return
        now = time.monotonic()
        for tp in list(consumer.assignment()):
            if tp.topic not in topics:
                continue
            hole = _hole(consumer, tp)
            if hole is None:
                sighted.pop(tp, None)
                backoff.pop(tp, None)
                continue
            if sighted.get(tp) != hole:
                sighted[tp] = hole  # first sighting: an agent may still be busy with it
                backoff.pop(tp, None)
                continue
            not_before, delay = backoff.get(tp, (0.0, 2 * interval_s))
            if now < not_before:
                continue  # re-read recently; agents may be slow to get there (e.g. ClickHouse down)
            backoff[tp] = (now + delay, min(delay * 2, 60.0))
            log.warning("%s[%d]: offset %d was never acknowledged by every agent while later ones were; "
                        "re-reading from it", tp.topic, tp.partition, hole)
            await consumer.seek(tp, hole)


class Contiguity:
    """Per source partition, the next offset an offset-idempotent state may apply.

    Records arrive in offset order; every record of the topic reaches every agent (bad ones
    included), so a jump means a record went missing (fix 3). :meth:`allowed` returns the
    records that continue the sequence; after a jump it refuses the rest of that partition
    until the hole healer's redelivery reaches the missing offset. Starts from the consumer's
    committed position after every (re)assignment.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.next: dict[int, int] = {}

        async def _reset(sender: Any, *args: Any, **kwargs: Any) -> None:
            self.next.clear()

        self._reset = _reset  # signals may hold receivers weakly
        app.on_partitions_assigned.connect(_reset)

    def allowed(self, topic: str, offsets: list[tuple[int, int]]) -> set[tuple[int, int]]:
        from faust.types import TP

        ok = set()
        for partition, offset in offsets:
            expected = self.next.get(partition)
            if expected is None:
                committed = self.app.consumer._committed_offset.get(TP(topic, partition))
                expected = offset if committed is None else committed
            if offset > expected:
                self.next[partition] = expected
                continue  # a hole before this record: wait for the redelivery
            ok.add((partition, offset))
            self.next[partition] = max(expected, offset + 1)
        return ok
