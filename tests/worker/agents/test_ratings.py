"""The ratings agent (worker/agents/ratings.py): valid ratings stored, invalid ones (same job
twice, unknown winner, undecodable) dead-lettered with the contract's reasons."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from types import SimpleNamespace

from contracts.codec import AvroCodec
from contracts.topics import RATINGS
from worker.agents.ratings import RatingsAgent
from worker.metrics import WorkerMetrics
from worker.stages.dead_letters import DeadLetters
from worker_fakes import ledger_for, protocol_with, Event, Stream, Topic, Warehouse

CODEC = AvroCodec("PairwiseRating")


def rating(i: int, **changes) -> dict:
    return {"rating_id": f"r-{i}", "job_a": f"job-{i}", "job_b": f"job-{i + 1}", "winner": "a", "rater": "alice",
            "rated_at": datetime(2026, 1, 5, tzinfo=timezone.utc), **changes}


def test_valid_ratings_stored_invalid_ones_dead_lettered() -> None:
    rt = SimpleNamespace(warehouse=Warehouse(), metrics=WorkerMetrics(), sink_pool=ThreadPoolExecutor(1))
    dlq = Topic()
    protocol = protocol_with(ledger_for(RATINGS, ["ratings"]))
    agent = RatingsAgent(rt, DeadLetters(dlq, RATINGS, rt.metrics), protocol, 100, 0.1)
    records = [rating(0), rating(1, job_b="job-1"), rating(2), rating(3, rater=" ")]
    events = [Event(CODEC.encode(r), 0, i, topic=RATINGS) for i, r in enumerate(records)]
    events.append(Event(b"\x00garbage", 0, 4, topic=RATINGS))
    asyncio.run(agent(Stream([events])))
    stored = [r for _, rows in rt.warehouse.inserts for r in rows.column("rating_id").to_pylist()]
    assert stored == ["r-0", "r-2"]
    reasons = [(h["source_offset"], h["reason"]) for _, _, h in dlq.sent]
    assert reasons == [(b"1", b"invalid_rating"), (b"3", b"invalid_rating"), (b"4", b"not_avro_single_object")]
    assert protocol.committable(RATINGS, 0) == 5
