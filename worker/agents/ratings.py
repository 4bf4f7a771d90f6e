"""The one agent on ``ratings.pairwise``: decode and check each rating (dead letters with a
reason otherwise) and store the batch in ``sentinel.ratings`` (ReplacingMergeTree by rating
id plus a dedup token from the source offsets: importing a file twice leaves one row each)."""

from __future__ import annotations

from typing import Any, Sequence

from contracts.errors import DecodeError, InvalidEvent
from contracts.ratings import check_rating
from warehouse.ratings import rating_rows
from worker import codecs
from worker.agents.base import BatchAgent
from worker.delivery.commit import CommitProtocol
from worker.delivery.sends import dedup_token, write_until_stored
from worker.stages.dead_letters import DeadLetters, rejected_event

NAME = "ratings"


class RatingsAgent(BatchAgent):
    name = NAME

    def __init__(self, runtime: Any, letters: DeadLetters, protocol: CommitProtocol, batch_size: int,
                 batch_wait_s: float) -> None:
        super().__init__(runtime, protocol, batch_size, batch_wait_s)
        self.letters = letters

    async def handle(self, events: Sequence[Any]) -> None:
        good, rejected = [], []
        for ev in events:
            try:
                record = codecs.decode("PairwiseRating", ev.value)
                check_rating(record)
            except (DecodeError, InvalidEvent) as exc:
                rejected.append(rejected_event(ev, exc))
                continue
            good.append((record, ev.message.partition, ev.message.offset))
        await self.letters.send(rejected)
        if good:
            await self.store(good)

    async def store(self, good: list[tuple[dict, int, int]]) -> None:
        table = rating_rows(good)
        token = dedup_token("ratings", [(p, o) for _, p, o in good])
        warehouse = self.rt.warehouse
        await write_until_stored(self.rt.sink_pool, lambda: warehouse.insert("sentinel.ratings", table, token),
                                 f"{len(good)} ratings", self.rt.metrics.sink_retries.inc)
        self.rt.metrics.rows_stored.labels("ratings").inc(len(good))
