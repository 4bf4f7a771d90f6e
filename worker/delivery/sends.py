"""Outputs that count as delivered only once acknowledged: Kafka sends, warehouse writes, and
the one-batch-behind output stage of an agent."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from worker.delivery.retry import Backoff, until_done

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 30.0  # producer request timeout: a send not acknowledged by then has failed


@dataclass(frozen=True)
class Outgoing:
    key: bytes | None
    value: Any
    headers: dict[str, bytes] | None = None


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
        if task is None:
            return
        if not task.done():
            task.cancel()
        elif not task.cancelled() and task.exception() is not None:
            log.error("an output stage failed while the agent was stopping: %r", task.exception())
