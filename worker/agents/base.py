"""The shape of a simple agent: take a batch, handle it, report it finished (the commit protocol)
once ``handle`` returned; a batch whose handling raised reports nothing and is read again."""

from __future__ import annotations

from typing import Any, Sequence

from worker.delivery.commit import CommitProtocol


class BatchAgent:
    name = "agent"

    def __init__(self, runtime: Any, protocol: CommitProtocol, batch_size: int, batch_wait_s: float) -> None:
        self.rt = runtime
        self.protocol = protocol
        self.batch_size = batch_size
        self.batch_wait_s = batch_wait_s

    async def __call__(self, stream: Any) -> None:
        async for events in stream.take_events(self.batch_size, within=self.batch_wait_s):
            with self.protocol.finished(self.name, events):
                await self.handle(events)

    async def handle(self, events: Sequence[Any]) -> None:
        raise NotImplementedError
