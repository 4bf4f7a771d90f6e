"""Where the worker's consumer commits, decided by what every agent finished, not by Faust's acks.

faust-streaming 0.15 commits an offset once every stream that received the record has
*acknowledged* it, or once its fetcher has called the offset a "gap". In the fault tests
(tests/integration/test_faults.py, tests/integration/test_worker_restart.py) that committed
records some agent never processed, by several paths found one by one: a stream skips an older
generation's event and acks it; a ``take_events`` batch is acked in a ``finally`` when the
agent body raised or was cancelled; ``Consumer._new_offset`` commits past an unacknowledged
offset at the committed position; and the fetcher records a gap wherever the offsets it
*delivers* jump -- also where it dropped records after a rebalance -- and gaps count as
acknowledged (the long-standing "run of 7-17 records right after a worker restart committed
and never scored": traced to a gap of offsets 57-63 on a partition, committed while the score
agent had not seen them). So neither decides anything for the agents' topics:

* **The commit ledger** (:class:`sentinel.offsets.CommitLedger`, built by :func:`install_ledger`
  from the app's agents). Each agent reports the records it finished -- after its outputs were
  acknowledged by the broker or stored, never on a failed or cancelled batch
  (``worker.app.finished``) -- and ``Consumer._new_offset`` commits a partition only up to the
  first offset some reader of the topic has not finished. Offsets are taken to be contiguous
  (the topics are neither compacted nor transactional). A record can be committed unprocessed
  only if an agent says it finished what it did not.

* **Uncommitted partitions are rewound** (a Faust bug, kept from the first repairs). After every
  rebalance Faust drops what its fetcher had buffered and seeks back to the committed offsets,
  but aiokafka's ``seek_to_committed`` seeks only partitions that *have* a committed offset; one
  without keeps its fetch position, past the records just dropped. Reproduced: a broker restart
  a few seconds after a fresh worker started made it continue past hundreds of unprocessed
  events. Such partitions are sought to their earliest offset (what
  ``auto_offset_reset="earliest"`` means). Every seek to the committed offsets restarts the
  ledger there.

* **The hole healer** (:class:`HoleHealer`, run by :func:`install_hole_healer`). Around
  rebalances Faust sometimes never hands a record to some agent while later records flow on
  (one offset of 2,400 never reached any agent; the score agent missing a run that archive and
  tally received). The ledger keeps such a record from being committed; the healer re-reads
  the partition from the commit position when a reader has finished later offsets but not that
  one (seen at two checks in a row), or when the position has not moved for ``idle_s`` while
  other readers are past it (records passed over at the end of what was published) or while
  the log goes on (a stall: in one SIGKILL run the tallies stayed 13 jobs short of the 2,000
  published for 5 min; a partition Faust left paused is resumed). Re-read records reach every
  agent again (idempotent) and arrive after later ones, so offset-idempotent states record
  exactly which offsets they hold (:class:`sentinel.offsets.AppliedOffsets`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable

from sentinel.offsets import CommitLedger

log = logging.getLogger(__name__)

_INSTALLED = False


EMPTY_FETCH_WAIT_S = 0.02


def waiting_after_empty(fetch: Callable[..., Awaitable[bool]], wait_s: float) -> Callable[..., Awaitable[bool]]:
    """Wrap aiokafka's ``Fetcher._proc_fetch_request``: after a fetch that brought nothing back
    sooner than ``fetch_max_wait_ms``, wait out the rest (at most ``wait_s``) before that broker
    is fetched again.

    noida-db answers a Fetch with no data at once, ignoring ``fetch_max_wait_ms``, so aiokafka's
    fetch loop (Faust's consumer thread) sent ~5,000 Fetches/s and an idle worker burned 0.9 of
    a core (measured per thread, py-spy: the whole core in ``_proc_fetch_request``). With 20 ms:
    ~50 Fetches/s, ~0.02 cores, and a record arriving on an idle topic waits 7 ms (median) more.
    A broker that long-polls (Kafka) answers an empty fetch only after ``fetch_max_wait_ms``:
    nothing changes there; while data flows the fetch returns True and nothing waits.
    """

    async def proc_fetch_request(self: Any, assignment: Any, node_id: Any, request: Any) -> bool:
        started = time.monotonic()
        has_new_data = await fetch(self, assignment, node_id, request)
        if not has_new_data:
            wait = min(self._fetch_max_wait_ms / 1000, wait_s) - (time.monotonic() - started)
            if wait > 0:
                try:
                    await asyncio.sleep(wait)
                except asyncio.CancelledError:  # Fetcher.close() awaits its cancelled fetch tasks
                    return False  # unguarded; the original also returns False when cancelled
        return has_new_data

    proc_fetch_request.__wrapped__ = fetch  # type: ignore[attr-defined]
    return proc_fetch_request


def install() -> None:
    """Patch Faust's Consumer (once per process): the rewind of uncommitted partitions, commits
    from the app's ledger where it has one (``app.sentinel_ledger``), and aiokafka's fetcher
    waiting after an empty fetch (:func:`waiting_after_empty`)."""
    global _INSTALLED
    if _INSTALLED:
        return
    from aiokafka.consumer.fetcher import Fetcher
    from faust.transport.consumer import Consumer

    Fetcher._proc_fetch_request = waiting_after_empty(Fetcher._proc_fetch_request,  # type: ignore[method-assign]
                                                      EMPTY_FETCH_WAIT_S)

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
            starts = {(tp.topic, tp.partition): self._committed_offset.get(tp) or 0
                      for tp in self.assignment() if ledger.tracks(tp.topic)}
            ledger.reset(starts)
            for hook in getattr(self.app, "sentinel_on_reset", ()):
                hook(starts)  # e.g. the gate: judge each partition in log order from here

    def _new_offset(self: Any, tp: Any) -> int | None:
        ledger = getattr(self.app, "sentinel_ledger", None)
        if ledger is None or not ledger.tracks(tp.topic):
            return original_new_offset(self, tp)
        offset = ledger.committable(tp.topic, tp.partition)
        if offset is not None:  # Faust's own bookkeeping, unused here: keep it bounded
            acked = self._acked[tp]
            passed = [o for o in acked if o < offset]
            if passed:
                acked[:] = [o for o in acked if o >= offset]
                self._acked_index[tp].difference_update(passed)
            gaps = self._gap.get(tp)
            if gaps:
                gaps.chop(0, offset)
        return offset

    perform_seek.__doc__ = original_seek.__doc__
    Consumer.perform_seek = perform_seek  # type: ignore[method-assign]
    Consumer._new_offset = _new_offset  # type: ignore[method-assign]
    _INSTALLED = True


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


class HoleHealer:
    """Decides, per partition and check, whether to re-read it from its commit position: when
    the ledger shows a record there was passed over (a reader finished later offsets; seen at
    two checks in a row), or when the position has not moved for ``idle_s`` although another
    reader is past it or the log goes on. Re-reads of one position back off from
    ``2 * interval_s`` to 60 s (while ClickHouse is down the sinks cannot finish anything, and
    every re-read only queues duplicates)."""

    def __init__(self, interval_s: float = 2.0, idle_s: float = 20.0) -> None:
        self.interval_s = interval_s
        self.idle_s = idle_s
        self.sighted: dict[Any, tuple[int, float]] = {}  # partition -> (commit position, unmoved since)
        self.backoff: dict[Any, tuple[float, float]] = {}  # partition -> (next re-read allowed at, delay)

    def forget(self) -> None:
        self.sighted.clear()

    async def due(self, consumer: Any, ledger: CommitLedger, tp: Any, now: float) -> tuple[int, str] | None:
        """(offset to re-read from, why) when a re-read of ``tp`` is due now, else None."""
        stuck = await self._stuck(consumer, ledger, tp, now)
        if stuck is None:
            return None
        not_before, delay = self.backoff.get(tp, (0.0, 2 * self.interval_s))
        if now < not_before:
            return None  # re-read recently; the readers may be slow to get there (e.g. ClickHouse down)
        self.backoff[tp] = (now + delay, min(delay * 2, 60.0))
        return stuck

    async def _stuck(self, consumer: Any, ledger: CommitLedger, tp: Any, now: float) -> tuple[int, str] | None:
        at = ledger.committable(tp.topic, tp.partition)
        if at is None:
            return None
        seen = self.sighted.get(tp)
        if seen is None or seen[0] != at:
            self.sighted[tp] = (at, now)  # moved (or first sighting): the readers are busy with it
            self.backoff.pop(tp, None)
            return None
        lag = ledger.lag(tp.topic, tp.partition)
        if lag is not None and lag.skipped:
            return at, f"not finished by {', '.join(lag.readers)} while it finished {lag.next_finished}"
        idle = now - seen[1]
        if idle < self.idle_s:
            return None
        if lag is not None:
            return at, f"not finished by {', '.join(lag.readers)} for {idle:.0f}s while others are past it"
        end = (await consumer.highwaters(tp)).get(tp)
        if end is None or end <= at:
            self.sighted[tp] = (at, now)  # caught up: ask the broker again after another idle_s
            return None
        return at, f"no reader got past it for {idle:.0f}s (log end {end})"


def install_hole_healer(app: Any, interval_s: float = 2.0, idle_s: float = 20.0) -> HoleHealer:
    """Run a :class:`HoleHealer` over the worker's partitions every ``interval_s``: a few dict
    lookups per assigned partition, and one log-end request per partition idle for ``idle_s``.
    A partition Faust left paused is resumed before the re-read."""
    healer = HoleHealer(interval_s, idle_s)

    @app.timer(interval=interval_s, name="sentinel.hole_healer")
    async def heal() -> None:
        consumer = app.consumer
        ledger: CommitLedger | None = getattr(app, "sentinel_ledger", None)
        if app.rebalancing or ledger is None:
            healer.forget()
            return
        now = time.monotonic()
        for tp in list(consumer.assignment()):
            if not ledger.tracks(tp.topic):
                continue
            due = await healer.due(consumer, ledger, tp, now)
            if due is None:
                continue
            at, why = due
            paused = tp in consumer._paused_partitions
            log.warning("%s[%d]: offset %d %s; re-reading from it%s", tp.topic, tp.partition, at, why,
                        " (the partition was paused: resumed)" if paused else "")
            if paused:
                consumer.resume_partitions({tp})
            await consumer.seek(tp, at)

    return healer
