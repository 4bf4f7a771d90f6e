"""The worker's one commit protocol: a partition is committed only up to the first record some
agent reading its topic has not finished.

Per batch, in this order:

0. each input topic's records reach its agent in batches through a :class:`Feed`
   (worker/delivery/feed.py), never through Faust's per-record channel path;
1. an agent produces its outputs and awaits them: sends acknowledged by the broker
   (worker/delivery/sends.py), rows stored in the warehouse, table values written;
2. it reports the batch finished (:meth:`CommitProtocol.finished`), leaving out records it
   deferred; a batch that raised or was cancelled reports nothing and is read again;
3. on Faust's commit timer, the ledger (:class:`sentinel.offsets.CommitLedger`) gives each
   partition's committable offset, Faust flushes its producer (table changelogs) and commits
   (the hook is installed by worker/delivery/overrides.py);
4. at every seek to the committed offsets the ledger restarts there and the ``on_restart``
   hooks run (the gate judges each partition in log order from there);
5. the :class:`HoleHealer` re-reads a partition whose commit position is stuck behind a record
   no reader finished. Everything downstream is idempotent, so a re-read costs only time.

Why Faust's own acks are not trusted, with the incidents: docs/delivery.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from sentinel.offsets import CommitLedger
from worker.delivery import overrides
from worker.delivery.feed import Feed
from worker.delivery.retry import Fenced

log = logging.getLogger(__name__)

Restart = Callable[[Mapping[tuple[str, int], int]], None]


class CommitProtocol:
    """The ledger of one app, built from its agents once they are all defined (:meth:`seal`)."""

    def __init__(self) -> None:
        self.ledger: CommitLedger | None = None
        self.on_restart: list[Restart] = []
        self.app: Any = None
        self.generation = 0  # seeks to the committed offsets so far: records read after one are re-reads
        self.feeds: dict[str, Feed] = {}  # input topic -> its agent's feed

    def feed(self, app: Any, topic: str, max_records: int, on_pause: Callable[[], None] | None = None) -> Feed:
        """The feed of ``topic`` (one agent per input topic)."""
        if topic in self.feeds:
            raise ValueError(f"{topic!r} has a feed already: one agent per input topic")
        self.feeds[topic] = feed = Feed(topic, app, max_records, on_pause)
        return feed

    def seal(self, app: Any) -> CommitLedger:
        """Every agent must finish every record of each topic it reads; commits follow the ledger."""
        readers: dict[str, set[str]] = {}
        for agent in app.agents.values():
            for topic in getattr(agent.channel, "topics", ()):
                readers.setdefault(topic, set()).add(agent.name)
        self.ledger = CommitLedger(readers)
        self.app = app
        overrides.attach(app, self)
        return self.ledger

    def fence(self, topic: str, partitions: Iterable[int]) -> Callable[[], None]:
        """A check that raises :class:`Fenced` unless this worker still holds every one of
        ``partitions`` of ``topic`` (always passes without a sealed app: unit tests)."""
        wanted = frozenset(partitions)

        def check() -> None:
            if self.app is None or not wanted:
                return
            held = {tp.partition for tp in self.app.consumer.assignment() if tp.topic == topic}
            if not wanted <= held:
                raise Fenced(f"{topic} partitions {sorted(wanted - held)} moved to another worker")
        return check

    def behind(self, topic: str, newest: Mapping[int, int]) -> int:
        """Records in the log after ``newest`` (partition -> the newest offset an agent has in
        hand), as far as the consumer's last fetch of each partition knows; 0 without a sealed
        app, before a fetch, or for a partition no longer held."""
        if self.app is None or not newest:
            return 0
        total = 0
        for tp in self.app.consumer.assignment():
            if tp.topic == topic and tp.partition in newest:
                try:
                    end = self.app.consumer.highwater(tp)
                except AssertionError:  # aiokafka: revoked meanwhile
                    continue
                if end is not None:
                    total += max(0, end - newest[tp.partition] - 1)
        return total

    def tracks(self, topic: str) -> bool:
        return self.ledger is not None and self.ledger.tracks(topic)

    def committable(self, topic: str, partition: int) -> int | None:
        return self.ledger.committable(topic, partition) if self.ledger is not None else None

    def restart(self, starts: Mapping[tuple[str, int], int]) -> None:
        self.generation += 1
        if self.ledger is not None:
            self.ledger.reset(dict(starts))
        for hook in self.on_restart:
            hook(starts)

    @contextlib.contextmanager
    def finished(self, agent: str, events: Sequence[Any]) -> Iterator[set[tuple[int, int]]]:
        """Around an agent's work on ``events``: once the body returns, ``agent`` has finished
        them, except the (partition, offset)s the body put into the set it was given (records it
        deferred). A body that raised or was cancelled reports nothing."""
        unfinished: set[tuple[int, int]] = set()
        yield unfinished
        if self.ledger is None:
            return
        for ev in events:
            msg = ev.message
            if (msg.partition, msg.offset) not in unfinished:
                self.ledger.finish(agent, msg.topic, msg.partition, msg.offset)


class HoleHealer:
    """Decides, per partition and check, whether to re-read it from its commit position: when
    the ledger shows a record there was passed over (a reader finished later offsets; seen at
    two checks in a row), or when the position has not moved for ``idle_s`` although another
    reader is past it or the log goes on. The idle clock starts when the position moves and
    again at every check that finds the partition caught up (the log ends at the position): a
    record published after a quiet spell has ``idle_s`` to be finished like any other. Re-reads
    of one position back off from ``2 * interval_s`` to 60 s (while ClickHouse is down the
    sinks cannot finish anything, and every re-read only queues duplicates)."""

    def __init__(self, interval_s: float = 2.0, idle_s: float = 20.0) -> None:
        self.interval_s = interval_s
        self.idle_s = idle_s
        self.sighted: dict[Any, tuple[int, float]] = {}  # partition -> (commit position, unmoved since)
        self.backoff: dict[Any, tuple[float, float]] = {}  # partition -> (next re-read allowed at, delay)

    def forget(self) -> None:
        self.sighted.clear()

    def due(self, ledger: CommitLedger, tp: Any, now: float, end: int | None) -> tuple[int, str] | None:
        """(offset to re-read from, why) when a re-read of ``tp`` is due now, else None;
        ``end`` is the partition's log end offset read at this check (None: unknown)."""
        stuck = self._stuck(ledger, tp, now, end)
        if stuck is None:
            return None
        not_before, delay = self.backoff.get(tp, (0.0, 2 * self.interval_s))
        if now < not_before:
            return None  # re-read recently; the readers may be slow to get there (e.g. ClickHouse down)
        self.backoff[tp] = (now + delay, min(delay * 2, 60.0))
        return stuck

    def _stuck(self, ledger: CommitLedger, tp: Any, now: float, end: int | None) -> tuple[int, str] | None:
        at = ledger.committable(tp.topic, tp.partition)
        if at is None:
            return None
        seen = self.sighted.get(tp)
        if seen is None or seen[0] != at or (end is not None and end <= at):
            # moved, first sighting, or caught up: nothing has waited on this position yet
            self.sighted[tp] = (at, now)
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
        if end is None:
            return None  # the log end is unknown: no evidence of a stall
        return at, f"no reader got past it for {idle:.0f}s (log end {end})"


def run_hole_healer(app: Any, protocol: CommitProtocol, interval_s: float = 2.0, idle_s: float = 20.0) -> HoleHealer:
    """Run a :class:`HoleHealer` over the worker's partitions every ``interval_s``: a few dict
    lookups per assigned partition and one log-end request for all of them. A partition Faust
    left paused is resumed before the re-read."""
    healer = HoleHealer(interval_s, idle_s)

    @app.timer(interval=interval_s, name="sentinel.hole_healer")
    async def heal() -> None:
        consumer = app.consumer
        ledger = protocol.ledger
        if app.rebalancing or ledger is None:
            healer.forget()
            return
        now = time.monotonic()
        tps = [tp for tp in consumer.assignment() if ledger.tracks(tp.topic)]
        ends = await _log_ends(consumer, tps)
        for tp in tps:
            await _heal_one(consumer, healer, ledger, tp, now, ends.get(tp))

    return healer


async def _log_ends(consumer: Any, tps: list[Any]) -> Mapping[Any, int]:
    if not tps:
        return {}
    try:
        return await asyncio.wait_for(consumer.highwaters(*tps), 10.0)
    except Exception as exc:  # broker unreachable or slow: this check decides without log ends
        log.debug("log ends unknown: %s: %s", type(exc).__name__, exc)
        return {}


async def _heal_one(consumer: Any, healer: HoleHealer, ledger: CommitLedger, tp: Any, now: float,
                    end: int | None) -> None:
    due = healer.due(ledger, tp, now, end)
    if due is None:
        return
    at, why = due
    paused = overrides.is_paused(consumer, tp)
    log.warning("%s[%d]: offset %d %s; re-reading from it%s", tp.topic, tp.partition, at, why,
                " (the partition was paused: resumed)" if paused else "")
    if paused:
        consumer.resume_partitions({tp})
    await consumer.seek(tp, at)
