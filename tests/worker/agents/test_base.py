"""The simple agent's shape (worker/agents/base.py): batches handled one at a time in log order,
each reported finished once handled, the next one read while one is handled, and a failure
raised in the agent with its batch unfinished."""

from __future__ import annotations

import asyncio

import pytest

from contracts.topics import JOBS_SCORED
from worker.agents.base import BatchAgent
from worker_fakes import Event, Stream, ledger_for, protocol_with


class Agent(BatchAgent):
    name = "scores"

    def __init__(self, protocol, log, fail_at=None) -> None:
        super().__init__(None, protocol, 10, 0.1)
        self.log, self.fail_at = log, fail_at

    async def handle(self, events):
        first = events[0].message.offset
        self.log.append(("handle", first))
        await asyncio.sleep(0.02)
        if first == self.fail_at:
            raise RuntimeError("store down")
        self.log.append(("handled", first))


class Reading(Stream):
    def __init__(self, batches, log) -> None:
        super().__init__(batches)
        self.log = log

    async def take_events(self, n, within):
        for batch in self.batches:
            self.log.append(("read", batch[0].message.offset))
            yield batch


def batches(*offsets: list[int]) -> list[list[Event]]:
    return [[Event(b"", 0, o, topic=JOBS_SCORED) for o in offs] for offs in offsets]


def test_the_next_batch_is_read_while_one_is_handled_and_each_finishes_in_order() -> None:
    protocol, log = protocol_with(ledger_for(JOBS_SCORED, ["scores"])), []
    asyncio.run(Agent(protocol, log)(Reading(batches([0, 1], [2, 3], [4]), log)))
    assert log.index(("read", 2)) < log.index(("handled", 0)) < log.index(("handle", 2))
    assert [e for e in log if e[0] != "read"] == [("handle", 0), ("handled", 0), ("handle", 2), ("handled", 2),
                                                  ("handle", 4), ("handled", 4)]
    assert protocol.committable(JOBS_SCORED, 0) == 5


def test_a_failed_batch_stops_the_agent_unfinished_with_the_batches_before_finished() -> None:
    protocol, log = protocol_with(ledger_for(JOBS_SCORED, ["scores"])), []
    with pytest.raises(RuntimeError, match="store down"):
        asyncio.run(Agent(protocol, log, fail_at=2)(Reading(batches([0, 1], [2, 3], [4]), log)))
    assert ("handle", 4) not in log  # nothing after the failed batch is handled
    assert protocol.committable(JOBS_SCORED, 0) == 2
