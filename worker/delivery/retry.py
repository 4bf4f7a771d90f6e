"""The one retry rule: capped exponential backoff (0.2 s doubling to 10 s), forever.

A worker never drops a batch because a dependency is down: it waits (ClickHouse, the broker)
and keeps its place in the log; every retried write is idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class Fenced(Exception):
    """The batch's partitions moved to another worker (a rebalance): writing its outputs now
    could land after the new owner's and double them, so the batch is dropped unfinished and
    the new owner reads it again (worker/delivery/commit.py ``CommitProtocol.fence``)."""


class Backoff:
    """Delays of one retry loop: ``first``, doubled after each wait, at most ``cap``."""

    def __init__(self, first: float = 0.2, cap: float = 10.0) -> None:
        self.delay = first
        self.cap = cap

    def next(self) -> float:
        """The delay to wait now; the following one doubles."""
        delay, self.delay = self.delay, min(self.delay * 2, self.cap)
        return delay

    async def wait(self) -> None:
        await asyncio.sleep(self.next())


class NotRetried(Exception):
    """Raised by an attempt for a failure no retry can mend (a bug, an input the code cannot
    handle, not a dependency that is down): ends the retry loop, with the failure as its cause."""


def once(build: Callable[[], T], what: str) -> Callable[[], T]:
    """A getter of ``build()``, computed at its first call and kept for the retries after it; a
    failure of ``build`` is :class:`NotRetried` ("``what`` failed: ..."): it is not an outage."""
    kept: list[T] = []

    def get() -> T:
        if not kept:
            try:
                kept.append(build())
            except Exception as exc:
                raise NotRetried(f"{what} failed: {type(exc).__name__}: {exc}") from exc
        return kept[0]
    return get


async def until_done(attempt: Callable[[], Awaitable[T]], what: str,
                     on_retry: Callable[[], Any] | None = None) -> T:
    """``await attempt()`` until it returns; any exception is logged, counted (``on_retry``)
    and retried after the backoff, except :class:`Fenced` and :class:`NotRetried`, which end
    the loop."""
    backoff = Backoff()
    while True:
        try:
            return await attempt()
        except (Fenced, NotRetried):
            raise
        except Exception as exc:  # driver errors, injected outages: retried as a whole
            if on_retry is not None:
                on_retry()
            log.warning("%s failed (%s: %s); retrying in %.1fs", what, type(exc).__name__, exc, backoff.delay)
            await backoff.wait()
