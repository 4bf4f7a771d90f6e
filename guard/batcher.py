"""Micro-batching: concurrent requests share one encoder call.

``submit`` queues an item and awaits its result. One collector task closes a batch when it holds
``max_batch`` items or when ``max_wait_s`` has passed since its oldest item arrived, runs
``run_batch`` on the batch in ``executor`` (a thread: the event loop never encodes) and resolves
each item's future. While the encoder is busy, new items queue, so under load batches fill up
and throughput grows with concurrency; alone, an item waits at most ``max_wait_s``.
``max_batch=1`` turns batching off (one encoder call per item, in arrival order).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import Executor
from typing import Callable, Generic, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Overloaded(RuntimeError):
    """More items waiting than the queue bound: the caller should answer 503 and retry later."""


class MicroBatcher(Generic[T, R]):
    def __init__(self, run_batch: Callable[[Sequence[T]], Sequence[R]], *, max_batch: int, max_wait_s: float,
                 executor: Executor, max_queue: int = 4096,
                 on_batch: Callable[[int, float], None] | None = None) -> None:
        if max_batch < 1 or max_wait_s < 0 or max_queue < 1:
            raise ValueError("max_batch >= 1, max_wait_s >= 0 and max_queue >= 1 required")
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.executor = executor
        self.max_queue = max_queue
        self.on_batch = on_batch  # (batch size, encoder seconds) after each batch
        self.batches = 0  # encoder calls so far
        self._items: deque[tuple[T, asyncio.Future, float]] = deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    async def submit(self, item: T) -> R:
        if len(self._items) >= self.max_queue:
            raise Overloaded(f"{len(self._items)} verdicts already waiting for the encoder")
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._collect())
        future: asyncio.Future = loop.create_future()
        self._items.append((item, future, loop.time()))
        self._wake.set()
        return await future

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        while self._items:
            _, future, _ = self._items.popleft()
            if not future.done():
                future.set_exception(Overloaded("the service is shutting down"))

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wake is not None
        while True:
            while not self._items:
                self._wake.clear()
                await self._wake.wait()
            deadline = self._items[0][2] + self.max_wait_s
            while len(self._items) < self.max_batch and (remaining := deadline - loop.time()) > 0:
                self._wake.clear()
                try:  # a lost Event wait loses nothing (unlike a lost Queue.get)
                    await asyncio.wait_for(self._wake.wait(), remaining)
                except asyncio.TimeoutError:
                    break
            batch = [self._items.popleft() for _ in range(min(self.max_batch, len(self._items)))]
            live = [(item, future) for item, future, _ in batch if not future.done()]  # callers gone: skip
            if live:
                await self._run(loop, live)

    async def _run(self, loop: asyncio.AbstractEventLoop, live: list[tuple[T, asyncio.Future]]) -> None:
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(self.executor, self.run_batch, [item for item, _ in live])
            if len(results) != len(live):
                raise RuntimeError(f"run_batch returned {len(results)} results for {len(live)} items")
        except Exception as exc:  # noqa: BLE001 - handed to every waiting caller
            for _, future in live:
                if not future.done():
                    future.set_exception(exc)
            return
        finally:
            self.batches += 1
            if self.on_batch is not None:
                self.on_batch(len(live), time.perf_counter() - started)
        for (_, future), result in zip(live, results):
            if not future.done():
                future.set_result(result)
