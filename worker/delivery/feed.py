"""Each input topic's records reach its agent in batches, straight from Faust's fetch loop.

Faust hands a record to an agent through a channel: decoded into an Event, put on the
stream's queue, taken off by the stream's iterator (sensors, acks, the current event) and
buffered again by ``take_events``. On the metadata path the feeds took the event loop from
54 to 23.5 µs per record and the worker from 5,703 to 7,117 records/s in one run
(bench/results/compare_feed.md). A :class:`Feed`
keeps the record as fetched (one deque append) and hands the agent lists of them through the
same ``take_events(n, within)`` the agents call on a stream, so agents and their unit tests
do not change.

Kept from Faust's channel (conductor.py's handler): a partition whose records fill 80% of
the feed stops being fetched until the feed is down to 40% (other topics keep flowing; the
fetch loop itself waits only at ``maxsize``: setting ``feed_max_records``); the fetch
loop waits while Faust's flow control is suspended (a rebalance) and while the producer's
buffer of table changelog writes is over its limit; a feed is emptied when flow control
resumes (what it held is read again from the committed offsets); the monitor's per-partition
"stream inbound" time that Faust's livelock check reads. Left out: acks, since commits follow
the commit ledger (worker/delivery/commit.py), and Faust's other per-record sensors. The
conductor builds a feed's handler for its topic's partitions (worker/delivery/overrides.py).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import time
from typing import Any, AsyncIterator, Awaitable, Callable

from faust.types import TP


class Record:
    """A fetched record as the agents read one: ``message`` (partition, offset, topic), ``key``
    and ``value`` (raw bytes: the input topics have the raw serializer). Weak-referenceable:
    it becomes Faust's current event for table writes (``overrides.make_current``)."""

    __slots__ = ("message", "key", "value", "__weakref__")

    def __init__(self, message: Any) -> None:
        self.message = message
        self.key = message.key
        self.value = message.value


class Feed:
    """One input topic's fetched records, waiting for its agent (fed by every partition of it
    this worker holds)."""

    HIGH = 0.8  # share of maxsize at which a partition stops being fetched (Faust: 1/1.25)
    LOW = 0.4  # share at which fetching resumes (Faust: 0.40)

    def __init__(self, topic: str, app: Any, maxsize: int, on_pause: Callable[[], None] | None = None) -> None:
        self.topic = topic
        self.app = app  # its flow_control, consumer, producer.buffer and monitor, read when used
        self.on_pause = on_pause  # counts partitions taken out of the fetch (worker metrics)
        self.maxsize = max(1, maxsize)
        self.high = max(1, int(self.maxsize * self.HIGH))
        self.low = int(self.maxsize * self.LOW)
        self._records: collections.deque[Any] = collections.deque()
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._paused: set[Any] = set()  # partitions taken out of the fetch while the feed is high
        app.flow_control.manage_queue(self)  # cleared on every resume

    def __len__(self) -> int:
        return len(self._records)

    def handler(self, tp: Any) -> Callable[[Any], Awaitable[None]]:
        """The consumer callback for partition ``tp`` (Faust's own TP: the consumer's pause and
        resume calls take nothing else; ``message.tp`` is aiokafka's). A partial, not a wrapping
        coroutine: the fetch loop awaits one coroutine per record, not two."""
        return functools.partial(self.put, tp=tp)

    async def put(self, message: Any, tp: Any) -> None:
        """Faust's fetch loop awaits this for every record of ``tp``."""
        app = self.app
        if not app.flow_control.is_active():
            await app.flow_control.acquire()
        buffer = app.producer.buffer
        if buffer.size > buffer.max_messages:
            await buffer.wait_until_ebb()
        while len(self._records) >= self.maxsize:
            self._room.clear()
            await self._room.wait()
        self._records.append(message)
        self._arrived.set()
        if len(self._records) >= self.high and tp not in self._paused:
            self._paused.add(tp)
            app.consumer.on_buffer_full(tp)
            if self.on_pause is not None:
                self.on_pause()

    def clear(self) -> None:
        self._records.clear()
        self._resume_fetching()

    def _resume_fetching(self) -> None:
        self._room.set()
        if self._paused:
            on_drop = self.app.consumer.on_buffer_drop
            for tp in self._paused:
                on_drop(tp)
            self._paused.clear()

    async def take_events(self, n: int, within: float) -> AsyncIterator[list[Record]]:
        """Batches of up to ``n`` records in fetch order: once a record is here, wait up to
        ``within`` seconds for ``n`` of them."""
        loop = asyncio.get_running_loop()
        records = self._records
        inbound = self.app.monitor.stream_inbound_time
        while True:
            while not records:
                self._arrived.clear()
                await self._arrived.wait()
            deadline = loop.time() + within
            while len(records) < n and loop.time() < deadline:
                self._arrived.clear()
                try:
                    async with asyncio.timeout_at(deadline):
                        await self._arrived.wait()
                except TimeoutError:
                    break
            batch = [Record(records.popleft()) for _ in range(min(n, len(records)))]
            if len(records) <= self.low:
                self._resume_fetching()
            else:
                self._room.set()
            if batch:  # empty when a rebalance cleared the feed meanwhile
                now = time.monotonic()
                for tp in {(r.message.topic, r.message.partition) for r in batch}:
                    inbound[TP(*tp)] = now  # Faust's livelock check: this partition's records are taken
                yield batch

    def actor(self, agent: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
        """The Faust agent function: it subscribes the topic (the conductor subscribes the
        topics of iterated channels) and runs ``agent`` on this feed instead of the stream."""
        async def run(stream: Any) -> None:
            aiter(stream.channel)
            await agent(self)
        return run
