"""Each input topic's records reach its agent in batches, straight from Faust's fetch loop.

Faust hands a record to an agent through a channel: decoded into an Event, put on the
stream's queue, taken off by the stream's iterator (sensors, acks, the current event) and
buffered again by ``take_events``. On the metadata path that was about 45 µs of event-loop
time per record, two thirds of the loop (bench/results/compare_feed.md). A :class:`Feed`
keeps the record as fetched (one deque append) and hands the agent lists of them through the
same ``take_events(n, within)`` the agents call on a stream, so agents and their unit tests
do not change.

Kept from Faust's channel: the fetch loop waits while a feed is full (the app's
``stream_buffer_maxsize``) and while Faust's flow control is suspended (a rebalance), and a
feed is emptied when flow control resumes (what it held is read again from the committed
offsets). Left out: acks, since commits follow the commit ledger (worker/delivery/commit.py),
and Faust's per-record sensors. The conductor builds a feed's handler for its topic's
partitions (worker/delivery/overrides.py).
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, AsyncIterator, Awaitable, Callable


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
    def __init__(self, topic: str, flow_control: Any, maxsize: int) -> None:
        self.topic = topic
        self.flow_control = flow_control  # the app's FlowControlEvent
        self.maxsize = max(1, maxsize)
        self._records: collections.deque[Any] = collections.deque()
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        flow_control.manage_queue(self)  # cleared on every resume

    def __len__(self) -> int:
        return len(self._records)

    async def on_message(self, message: Any) -> None:
        """The consumer callback for this topic's partitions (Faust's fetch loop awaits it)."""
        if not self.flow_control.is_active():
            await self.flow_control.acquire()
        while len(self._records) >= self.maxsize:
            self._room.clear()
            await self._room.wait()
        self._records.append(message)
        self._arrived.set()

    def clear(self) -> None:
        self._records.clear()
        self._room.set()

    async def take_events(self, n: int, within: float) -> AsyncIterator[list[Record]]:
        """Batches of up to ``n`` records in fetch order: once a record is here, wait up to
        ``within`` seconds for ``n`` of them."""
        loop = asyncio.get_running_loop()
        records = self._records
        while True:
            while not records:
                self._arrived.clear()
                await self._arrived.wait()
            deadline = loop.time() + within
            while len(records) < n:
                left = deadline - loop.time()
                if left <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), left)
                except asyncio.TimeoutError:
                    break
            batch = [Record(records.popleft()) for _ in range(min(n, len(records)))]
            self._room.set()
            if batch:  # empty when a rebalance cleared the feed meanwhile
                yield batch

    def actor(self, agent: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
        """The Faust agent function: it subscribes the topic (the conductor subscribes the
        topics of iterated channels) and runs ``agent`` on this feed instead of the stream."""
        async def run(stream: Any) -> None:
            aiter(stream.channel)
            await agent(self)
        return run
