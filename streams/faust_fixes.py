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
   agent receives the records again (duplicates are idempotent). The re-read records reach an
   agent after later ones, so offset-idempotent states record exactly which offsets they hold
   (sentinel.offsets.AppliedOffsets), not a "last offset applied" watermark. (A guard that
   held back every record past a missing one, tried first, lost records for good when the
   offset it waited for was one Faust had already acknowledged: 795 of 2,000 tallies in one
   fault-suite run.)

4. **A record from before a rebalance is acknowledged for an agent that skipped it.** A
   stream drops (skips) an event of an older consumer generation -- the rebalance's seek
   re-reads it -- but *acknowledges* it while doing so. With ``stream_wait_empty=False`` a
   slow agent (the score agent) still holds such events in its queue after the rebalance, so
   their acks land in the new generation's bookkeeping, and once the fast agents had handled
   the same records the offsets were committed although the slow agent never processed them
   (13 jobs never scored in a fault-suite run). Fixed: an ack of an older generation's message
   marks it done but is never counted toward a commit; the copy re-read after the seek is.
   Still open: runs of 7-17 records right after a worker restart were committed without the
   score agent processing them in 3 of 5 later runs (not fixed by also ignoring acks while the
   flow is suspended, tried). A candidate found in the code and guarded since
   (``streams.app.unprocessed_on_failure``): ``take_events`` acks a whole batch in a
   ``finally`` even when the agent body raised or was cancelled. With that guard the SIGKILL
   test passed 4 of 4 runs, the broker-restart test 2 of 4 (one stalled in the rejoin after the
   restart, one lost the 27 scores in flight when the broker stopped); the crash tests stay
   opt-in until that is found.
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
    from faust.types.tuples import ack_lock

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

    original_ack = Consumer.ack

    def ack(self: Any, message: Any) -> bool:
        current = getattr(self.app, "consumer_generation_id", None)
        if getattr(message, "generation_id", current) != current:
            with ack_lock:  # done with, but never counted: the rebalance's seek re-reads it
                message.acked = True
            return False
        return original_ack(self, message)

    perform_seek.__doc__ = original_seek.__doc__
    Consumer.perform_seek = perform_seek  # type: ignore[method-assign]
    Consumer._new_offset = _new_offset  # type: ignore[method-assign]
    Consumer.ack = ack  # type: ignore[method-assign]
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
