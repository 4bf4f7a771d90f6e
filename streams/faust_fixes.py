"""Where the worker's consumer commits, decided by what every agent finished, not by Faust's acks.

faust-streaming 0.15 commits an offset once every stream that received the record has
*acknowledged* it. In the fault tests (tests/integration/test_faults.py,
tests/integration/test_worker_restart.py) that committed records some agent never processed,
by several paths found one by one: a stream skips an older generation's event and acks it; a
``take_events`` batch is acked in a ``finally`` when the agent body raised or was cancelled;
``Consumer._new_offset`` commits past an unacknowledged offset at the committed position; and
after each of those was patched a SIGKILL run still left a run of records committed and never
scored. So the acks no longer decide anything for the agents' topics:

* **The commit ledger** (:class:`sentinel.offsets.CommitLedger`, built by :func:`install_ledger`
  from the app's agents). Each agent reports the records it finished -- after its outputs were
  acknowledged by the broker or stored, never on a failed or cancelled batch
  (``streams.app.finished``) -- and ``Consumer._new_offset`` commits a partition only up to the
  first offset some reader of the topic has not finished (known gaps in the log count as
  finished). A record can be committed unprocessed only if an agent says it finished what it
  did not.

* **Uncommitted partitions are rewound** (a Faust bug, kept from the first repairs). After every
  rebalance Faust drops what its fetcher had buffered and seeks back to the committed offsets,
  but aiokafka's ``seek_to_committed`` seeks only partitions that *have* a committed offset; one
  without keeps its fetch position, past the records just dropped. Reproduced: a broker restart
  a few seconds after a fresh worker started made it continue past hundreds of unprocessed
  events. Such partitions are sought to their earliest offset (what
  ``auto_offset_reset="earliest"`` means). Every seek to the committed offsets restarts the
  ledger there.

* **The hole healer** (:func:`install_hole_healer`). Around rebalances Faust sometimes never
  hands a re-fetched record to some agent while later records flow on (one offset of 2,400
  never reached any agent; the score agent missing a run that archive and tally received). The
  ledger keeps such a record from being committed; the healer re-reads the partition from the
  commit position when a reader has finished later offsets but not that one (seen at two
  checks in a row), or when the position has not moved for ``idle_s`` while other readers are
  past it (records passed over at the end of what was published) or while the log goes on (a
  stall: in one SIGKILL run the tallies stayed 13 jobs short of the 2,000 published for 5 min;
  a partition Faust left paused is resumed). Re-read records reach
  every agent again (idempotent) and arrive after later ones, so offset-idempotent states
  record exactly which offsets they hold (:class:`sentinel.offsets.AppliedOffsets`).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from sentinel.offsets import CommitLedger

log = logging.getLogger(__name__)

_INSTALLED = False


def install() -> None:
    """Patch Faust's Consumer (once per process): the rewind of uncommitted partitions, and
    commits from the app's ledger where it has one (``app.sentinel_ledger``)."""
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
        if uncommitted:
            earliest = await self.earliest_offsets(*uncommitted)
            for tp, offset in earliest.items():
                await self.seek(tp, offset)
                # where the first commit must start; not sent to the broker
                self._committed_offset[tp] = offset
            log.info("no committed offset for %s: rewound to the earliest offsets",
                     sorted(f"{tp.topic}[{tp.partition}]" for tp in uncommitted))
        ledger = getattr(self.app, "sentinel_ledger", None)
        if ledger is not None:
            ledger.reset({(tp.topic, tp.partition): self._committed_offset.get(tp) or 0
                          for tp in self.assignment() if ledger.tracks(tp.topic)})

    def _new_offset(self: Any, tp: Any) -> int | None:
        ledger = getattr(self.app, "sentinel_ledger", None)
        if ledger is None or not ledger.tracks(tp.topic):
            return original_new_offset(self, tp)
        offset = ledger.committable(tp.topic, tp.partition, gap_end(self, tp))
        acked = self._acked[tp]
        if offset is not None and acked:  # Faust's own bookkeeping, unused here: keep it bounded
            passed = [o for o in acked if o < offset]
            if passed:
                acked[:] = [o for o in acked if o >= offset]
                self._acked_index[tp].difference_update(passed)
        return offset

    perform_seek.__doc__ = original_seek.__doc__
    Consumer.perform_seek = perform_seek  # type: ignore[method-assign]
    Consumer._new_offset = _new_offset  # type: ignore[method-assign]
    _INSTALLED = True


def gap_end(consumer: Any, tp: Any) -> Callable[[int], int | None]:
    """For the ledger: the end of the known gap in ``tp``'s log (offsets that do not exist)
    holding an offset, from Faust's gap tree."""
    tree = consumer._gap.get(tp)

    def end(offset: int) -> int | None:
        if not tree:
            return None
        hits = tree[offset]
        return max(i.end for i in hits) if hits else None

    return end


def install_ledger(app: Any) -> CommitLedger:
    """Build the app's commit ledger from its agents (call after every agent is defined): each
    agent must finish every record of each topic it reads."""
    readers: dict[str, set[str]] = {}
    for agent in app.agents.values():
        for topic in getattr(agent.channel, "topics", ()):
            readers.setdefault(topic, set()).add(agent.name)
    ledger = CommitLedger(readers)
    app.sentinel_ledger = ledger
    return ledger


def install_hole_healer(app: Any, interval_s: float = 2.0, idle_s: float = 20.0) -> None:
    """Re-read a partition from its commit position when the ledger shows a record there was
    passed over, or when the position has not moved for ``idle_s`` although another reader is
    past it or the log goes on (a partition Faust left paused, records never handed on). Re-reads
    of one position back off from 4 s to 60 s (while ClickHouse is down the sinks cannot finish
    anything, and every re-read only queues duplicates). Costs a few dict lookups per assigned
    partition every ``interval_s``, and one log-end request per partition idle for ``idle_s``."""
    sighted: dict[Any, tuple[int, float]] = {}  # partition -> (commit position, unmoved since)
    backoff: dict[Any, tuple[float, float]] = {}  # partition -> (next re-read allowed at, delay)

    async def why_stuck(consumer: Any, ledger: CommitLedger, tp: Any, now: float) -> tuple[int, str] | None:
        gaps = gap_end(consumer, tp)
        at = ledger.committable(tp.topic, tp.partition, gaps)
        if at is None:
            return None
        seen = sighted.get(tp)
        if seen is None or seen[0] != at:
            sighted[tp] = (at, now)  # moved (or first sighting): the readers are busy with it
            backoff.pop(tp, None)
            return None
        lag = ledger.lag(tp.topic, tp.partition, gaps)
        if lag is not None and lag.skipped:
            return at, f"not finished by {', '.join(lag.readers)} while it finished {lag.next_finished}"
        idle = now - seen[1]
        if idle < idle_s:
            return None
        if lag is not None:
            return at, f"not finished by {', '.join(lag.readers)} for {idle:.0f}s while others are past it"
        end = (await consumer.highwaters(tp)).get(tp)
        if end is None or end <= at:
            sighted[tp] = (at, now)  # caught up: ask the broker again after another idle_s
            return None
        return at, f"no reader got past it for {idle:.0f}s (log end {end})"

    @app.timer(interval=interval_s, name="sentinel.hole_healer")
    async def heal() -> None:
        consumer = app.consumer
        ledger: CommitLedger | None = getattr(app, "sentinel_ledger", None)
        if app.rebalancing or ledger is None:
            sighted.clear()
            return
        now = time.monotonic()
        for tp in list(consumer.assignment()):
            if not ledger.tracks(tp.topic):
                continue
            stuck = await why_stuck(consumer, ledger, tp, now)
            if stuck is None:
                continue
            not_before, delay = backoff.get(tp, (0.0, 2 * interval_s))
            if now < not_before:
                continue  # re-read recently; the readers may be slow to get there (e.g. ClickHouse down)
            backoff[tp] = (now + delay, min(delay * 2, 60.0))
            at, why = stuck
            paused = tp in consumer._paused_partitions
            log.warning("%s[%d]: offset %d %s; re-reading from it%s", tp.topic, tp.partition, at, why,
                        " (the partition was paused: resumed)" if paused else "")
            if paused:
                consumer.resume_partitions({tp})
            await consumer.seek(tp, at)
