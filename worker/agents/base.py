"""The shape of a simple agent: take a batch, handle it, report it finished (the commit protocol)
once ``handle`` returned; a batch whose handling raised reports nothing and is read again. The
next batch is read while one is handled."""

from __future__ import annotations

import logging
from typing import Any, Sequence

from worker.delivery.commit import CommitProtocol
from worker.delivery.retry import Fenced
from worker.delivery.sends import OneBehind

log = logging.getLogger(__name__)


class BatchAgent:
    name = "agent"
    topic = ""  # the input topic (its partitions fence the batch's writes; "" = no fence)

    def __init__(self, runtime: Any, protocol: CommitProtocol, batch_size: int, batch_wait_s: float) -> None:
        self.rt = runtime
        self.protocol = protocol
        self.batch_size = batch_size
        self.batch_wait_s = batch_wait_s

    async def __call__(self, stream: Any) -> None:
        handling = OneBehind()
        try:
            # Faust fills the next batch only while this loop waits in take_events: a batch is
            # handled in a task (one at a time, in order), so the next one is read meanwhile
            async for events in stream.take_events(self.batch_size, within=self.batch_wait_s):
                await handling.push(self.finish(events))
            await handling.drain()
        finally:
            handling.cancel()

    async def finish(self, events: Sequence[Any]) -> None:
        try:
            with self.protocol.finished(self.name, events):
                await self.handle(events)
        except Fenced as exc:  # unfinished: the partitions' new owner reads them again
            log.info("%s: dropped a batch of %d (%s)", self.name, len(events), exc)

    async def handle(self, events: Sequence[Any]) -> None:
        raise NotImplementedError

    def fence(self, events: Sequence[Any]) -> Any:
        """Raises ``Fenced`` once a partition of ``events`` is no longer this worker's."""
        return self.protocol.fence(self.topic, {ev.message.partition for ev in events}) if self.topic else None
