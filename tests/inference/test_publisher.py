"""The publisher on a broker that refuses idempotent producers (tansu, started by the test):
it falls back to a plain producer with a warning, and what it publishes reads back intact."""

from __future__ import annotations

import asyncio
import logging

import pytest
from conftest import consume_all, make_event

from contracts.codec import AvroCodec
from devstack.broker import EmbeddedBroker
from inference.publisher import JobPublisher

pytestmark = pytest.mark.integration


def test_a_broker_refusing_idempotence_gets_a_plain_producer(caplog) -> None:
    events = [make_event(i, seed=5) for i in range(5)]
    with EmbeddedBroker("tansu") as broker:
        async def main() -> bool:
            async with JobPublisher(broker.bootstrap) as publisher:
                for event in events:
                    await publisher.publish(event)
                return publisher.idempotent

        with caplog.at_level(logging.WARNING, logger="inference.publisher"):
            idempotent = asyncio.run(main())
        records = consume_all(broker.bootstrap, "jobs.completed", expect=len(events), timeout=30)
    assert idempotent is False and "refused an idempotent producer" in caplog.text
    codec = AvroCodec("JobCompleted")
    assert sorted(codec.decode(r.value)["job_id"] for r in records) == sorted(e["job_id"] for e in events)
