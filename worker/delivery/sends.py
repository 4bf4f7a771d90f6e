"""Outputs that count as delivered only once acknowledged: Kafka sends, warehouse writes, and
an agent's output stages that run behind its input (one batch behind, or merging what waits)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Generic, Sequence, TypeVar

from worker.delivery.retry import Backoff, until_done

log = logging.getLogger(__name__)

T = TypeVar("T")

SEND_TIMEOUT_S = 30.0  # producer request timeout: a send not acknowledged by then has failed


@dataclass(frozen=True)
class Outgoing:
    key: bytes | None
    value: Any
    headers: dict[str, bytes] | None = None


class ProducerTopic:
    """A Faust output topic whose records go straight to the app's producer.

    Serialized as ``Topic.send`` does (the topic's codecs and headers; the producer partitions by
    key), without its per-record machinery (a FutureMessage and PendingMessage, the send sensors, a
    completion callback): a JobScored handed over for 35-39 us of CPU instead of 45-55 through
    ``Topic.send`` (both with patch 6 of worker/delivery/overrides.py, which stopped the sender
    running between records; before it, 500 records left in about 190 produce requests, 13 this
    way). ``send`` returns the delivery future, as ``Topic.send`` does; records always go at once
    (``force`` is accepted for ``Topic.send``'s signature: nothing is attached to the current event).
    """

    def __init__(self, topic: Any) -> None:
        self.topic = topic
        self._producer: Any = None

    def get_topic_name(self) -> str:
        return self.topic.get_topic_name()

    async def send(self, *, key: Any = None, value: Any = None, headers: Any = None, force: bool = True) -> Any:
        if self._producer is None:  # the app's one producer, started once
            self._producer = await self.topic.app.maybe_start_producer()
        topic = self.topic
        open_headers = topic.prepare_headers(headers)
        key_bytes, open_headers = topic.prepare_key(key, None, None, open_headers)
        value_bytes, open_headers = topic.prepare_value(value, None, None, open_headers)
        return await self._producer.send(topic.get_topic_name(), key_bytes, value_bytes, partition=None,
                                         timestamp=None, headers=open_headers)


def _outcome(fut: Any) -> Any:
    """A delivery future's result, its exception, or a TimeoutError while still pending."""
    if not fut.done():
        return TimeoutError(f"no broker acknowledgement within {2 * SEND_TIMEOUT_S:.0f}s")
    if fut.cancelled():
        return asyncio.CancelledError()
    return fut.exception() or fut.result()


async def send_delivered(topic: Any, messages: Sequence[Outgoing], what: str,
                         on_retry: Callable[[], Any] | None = None) -> None:
    """Send ``messages`` and return once the broker has acknowledged every one of them.

    Faust flushes its producer before committing, but a send that *failed* (a broker restart,
    a leader change, a metadata timeout) leaves nothing to flush and the offset is committed
    anyway: an output silently lost. So every delivery is awaited and failed ones are sent
    again with the backoff (a resend can duplicate an output; consumers are idempotent).
    """
    pending = list(messages)
    backoff = Backoff()
    while pending:
        results: list[Any] = []
        for m in pending:
            try:
                results.append(await topic.send(key=m.key, value=m.value, headers=m.headers, force=True))
            except Exception as exc:  # the producer refused it outright
                results.append(exc)
        waiting = [r for r in results if not isinstance(r, BaseException)]
        if waiting:  # a backstop: expired batches fail on their own after SEND_TIMEOUT_S
            await asyncio.wait([asyncio.ensure_future(r) for r in waiting], timeout=2 * SEND_TIMEOUT_S)
        settled = [r if isinstance(r, BaseException) else _outcome(r) for r in results]
        failed = [(m, r) for m, r in zip(pending, settled) if isinstance(r, BaseException)]
        if not failed:
            return
        if on_retry is not None:
            on_retry()
        exc = failed[0][1]
        log.warning("sending %d of %d %s failed (%s: %s); retrying in %.1fs", len(failed), len(pending), what,
                    type(exc).__name__, exc, backoff.delay)
        await backoff.wait()
        pending = [m for m, _ in failed]


def dedup_token(table: str, items: Sequence[tuple[int, int]]) -> str:
    """Same source offsets -> same token, so a retried batch is a no-op insert."""
    h = hashlib.sha1(table.encode())
    for partition, offset in items:
        h.update(f"{partition}:{offset},".encode())
    return h.hexdigest()


async def write_until_stored(pool: Executor, write: Callable[[], None], what: str,
                             on_retry: Callable[[], Any] | None = None, fence: Callable[[], None] | None = None) -> None:
    """Run a sink write in ``pool`` until it succeeds. Raising would end the agent's loop (the
    batch is read again only after a rebalance or a re-read); waiting keeps order and batch.
    ``fence()`` runs before every attempt and raises ``Fenced`` once the batch's partitions
    moved away (a write retried across a rebalance must not land after the new owner's)."""
    loop = asyncio.get_running_loop()

    async def attempt() -> None:
        if fence is not None:
            fence()
        await loop.run_in_executor(pool, write)

    await until_done(attempt, f"storing {what}", on_retry)


def _stop(task: asyncio.Future | None) -> None:
    """Cancel an output stage's task; one that already failed unseen has its error logged."""
    if task is None:
        return
    if not task.done():
        task.cancel()
    elif not task.cancelled() and task.exception() is not None:
        log.error("an output stage failed while the agent was stopping: %r", task.exception())


class OneBehind:
    """An agent's output stage, one batch behind: the agent hands batch N's outputs (sends,
    sink writes, each batch's ``finished`` inside) to a task and goes on with batch N+1's
    input stage (the gate, scoring) while they complete, so the score executor and the sink
    work at the same time. At most one batch in flight, so outputs keep the log order; a
    failed stage raises in the agent at its next ``push`` or at ``drain``, like an inline one."""

    def __init__(self) -> None:
        self._task: asyncio.Future | None = None

    async def push(self, stage: Any) -> None:
        """Wait for the previous batch's stage, then start ``stage`` (a coroutine)."""
        try:
            await self.drain()
        except BaseException:
            stage.close()  # never started: its batch reports nothing and is read again
            raise
        self._task = asyncio.ensure_future(stage)

    async def drain(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await task

    def cancel(self) -> None:
        """Stop the stage in flight; a stage that already failed unseen has its error logged."""
        task, self._task = self._task, None
        _stop(task)


class Merging(Generic[T]):
    """An agent's output stage that merges what waits: while one delivery runs, the batches
    handed in queue up, and when it ends they go out together (``deliver`` gets them as one
    list, in log order), up to ``max_events`` records or ``max_bytes`` of record values. So
    the fixed costs of a delivery (an insert into every table and the views behind it, a
    changelog write per key) are shared by several batches. Only batches ``together`` approves
    (with the first) share one.

    Under a backlog (the pusher says ``more`` is coming, and batches have been arriving less
    than ``linger_s`` apart) a delivery also waits up to ``linger_s`` for the next batch while
    the merged size has room for one more; otherwise a batch goes at once. ``push`` waits while
    the queue is full (one batch can always wait). A failed delivery drops the queue (those
    batches report nothing and are read again) and raises in the agent at its next ``push`` or
    at ``drain``."""

    def __init__(self, deliver: Callable[[list[T]], Awaitable[None]], max_events: int, max_bytes: int,
                 linger_s: float = 0.0, clock: Callable[[], float] = time.monotonic,
                 together: Callable[[T, T], bool] = lambda a, b: True) -> None:
        self._deliver = deliver
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.linger_s = linger_s
        self.clock = clock
        self.together = together  # whether two batches may share a delivery (else they go in turn)
        self._queue: list[tuple[T, int, int]] = []
        self._events = self._bytes = 0
        self._last = (0, 0)  # the last batch's (events, bytes): the next one is expected alike
        self._more = False
        self._gap = float("inf")  # seconds between the last two pushes
        self._pushed_at: float | None = None
        self._task: asyncio.Future | None = None
        self._taken = asyncio.Event()
        self._pushed = asyncio.Event()
        self._blocked = False

    async def push(self, batch: T, events: int, nbytes: int, more: bool = False) -> None:
        while self._queue and (self._events + events > self.max_events or self._bytes + nbytes > self.max_bytes):
            self._raise_failed()
            self._taken.clear()
            self._blocked = True
            self._pushed.set()  # a lingering delivery stops waiting: the queue is as full as it gets
            taken = asyncio.ensure_future(self._taken.wait())
            try:
                await asyncio.wait([taken, self._task], return_when=asyncio.FIRST_COMPLETED)
            finally:
                taken.cancel()
                self._blocked = False
        self._raise_failed()
        now = self.clock()
        self._gap = float("inf") if self._pushed_at is None else now - self._pushed_at
        self._pushed_at = now
        self._queue.append((batch, events, nbytes))
        self._events += events
        self._bytes += nbytes
        self._last, self._more = (events, nbytes), more
        self._pushed.set()
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    def _raise_failed(self) -> None:
        if self._task is not None and self._task.done():
            self._task.result()  # raises what the delivery raised

    def _room(self) -> bool:
        """Whether one more batch like the last would fit the merged delivery."""
        return (self._events + self._last[0] <= self.max_events and self._bytes + self._last[1] <= self.max_bytes)

    async def _linger(self) -> None:
        deadline = self.clock() + self.linger_s
        while self._more and self._gap < self.linger_s and self._room() and not self._blocked:
            left = deadline - self.clock()
            if left <= 0:
                return
            self._pushed.clear()
            try:
                await asyncio.wait_for(self._pushed.wait(), left)
            except asyncio.TimeoutError:
                return

    async def _run(self) -> None:
        try:
            while self._queue:
                await self._linger()
                await self._deliver(self._take())
        except BaseException:
            self._queue, self._events, self._bytes = [], 0, 0
            self._taken.set()
            raise
        self._task = None  # only after a clean finish: a failed task stays to raise at push/drain

    def _take(self) -> list[T]:
        """The queue's head and the batches after it that may go with it."""
        first = self._queue[0][0]
        n = 1
        while n < len(self._queue) and self.together(first, self._queue[n][0]):
            n += 1
        taken, self._queue = self._queue[:n], self._queue[n:]
        self._events -= sum(e for _, e, _ in taken)
        self._bytes -= sum(b for _, _, b in taken)
        self._taken.set()
        return [batch for batch, _, _ in taken]

    async def drain(self) -> None:
        self._more = False  # nothing more is coming: no lingering
        self._pushed.set()
        task = self._task
        if task is not None:
            await task

    def cancel(self) -> None:
        """Stop the delivery in flight and drop the queue; a failure nobody saw is logged."""
        task, self._task = self._task, None
        self._queue, self._events, self._bytes = [], 0, 0
        _stop(task)
