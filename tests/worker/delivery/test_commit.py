"""The commit protocol (worker/delivery/commit.py): what agents finish moves the commit, a
failed batch finishes nothing, every agent is a reader, and the hole healer's decisions."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from faust.types import TP

from config.settings import Settings
from sentinel.offsets import CommitLedger
from worker.app import create_app
from worker.delivery import overrides
from worker_fakes import ledger_from, protocol_with
from worker.delivery.commit import HoleHealer

TOPIC = "jobs.completed"
READERS = ("archive", "score", "tally")


def test_every_agent_of_the_worker_is_a_reader_of_its_topics(tmp_path) -> None:
    from worker.runtime import Runtime

    settings = Settings(data_dir=tmp_path)
    runtime = Runtime(settings=settings, warehouse=SimpleNamespace(close=lambda: None), scorer=None,
                      pricing=settings.pricing(), moments=SimpleNamespace(forget=lambda: None))
    app = create_app(settings, runtime)
    protocol = overrides.protocol_of(app)
    assert protocol.ledger.readers == {  # one agent per input topic
        "jobs.completed": ("jobs",),
        "jobs.scored": ("scores",),
        "alerts.quality": ("alerts",),
        "ratings.pairwise": ("ratings",),
    }
    runtime.close()


def test_a_batch_body_that_raised_finishes_nothing() -> None:
    ledger = ledger_from(0, {"archive": range(3), "tally": range(3)})
    protocol = protocol_with(ledger)
    events = [SimpleNamespace(message=SimpleNamespace(topic=TOPIC, partition=0, offset=o)) for o in range(3)]
    with pytest.raises(RuntimeError):
        with protocol.finished("score", events):
            raise RuntimeError("the sink blew up")
    assert ledger.committable(TOPIC, 0) == 0
    for ev in events:  # the re-read copies
        with protocol.finished("score", [ev]):
            pass
    assert ledger.committable(TOPIC, 0) == 3


class FakeConsumer:
    """What the healer reads of Faust's consumer: the log ends."""

    def __init__(self, end: int | None = None) -> None:
        self.end = end

    async def highwaters(self, tp):
        return {tp: self.end}


def due(healer: HoleHealer, consumer: FakeConsumer, ledger: CommitLedger, now: float):
    return asyncio.run(healer.due(consumer, ledger, TP(TOPIC, 0), now))


def test_a_passed_over_record_is_re_read_at_the_second_sighting_then_backs_off() -> None:
    ledger = ledger_from(10, {"archive": range(10, 20), "tally": range(10, 20), "score": [10, 11, 12, 14, 15]})
    healer, consumer = HoleHealer(interval_s=2.0, idle_s=20.0), FakeConsumer()
    assert due(healer, consumer, ledger, 0.0) is None  # first sighting: score may still be at it
    assert due(healer, consumer, ledger, 2.0) == (13, "not finished by score while it finished 14")
    assert due(healer, consumer, ledger, 4.0) is None  # backing off: 4 s, then 8 s
    assert due(healer, consumer, ledger, 6.0) is not None
    assert due(healer, consumer, ledger, 10.0) is None
    assert due(healer, consumer, ledger, 14.0) is not None
    ledger.finish("score", TOPIC, 0, 13)  # the re-read copy arrived: the position moves on
    assert due(healer, consumer, ledger, 16.0) is None and due(healer, consumer, ledger, 18.0) is None


def test_a_slow_reader_is_left_alone_until_it_has_not_moved_for_idle_s() -> None:
    ledger = ledger_from(10, {"archive": range(10, 20), "tally": range(10, 20), "score": [10, 11]})
    healer, consumer = HoleHealer(interval_s=2.0, idle_s=20.0), FakeConsumer()
    assert due(healer, consumer, ledger, 0.0) is None
    assert due(healer, consumer, ledger, 10.0) is None
    ledger.finish("score", TOPIC, 0, 12)  # progress restarts the clock
    assert due(healer, consumer, ledger, 12.0) is None
    assert due(healer, consumer, ledger, 31.0) is None
    assert due(healer, consumer, ledger, 32.0) == (13, "not finished by score for 20s while others are past it")


def test_a_partition_nobody_reads_on_is_re_read_only_if_the_log_goes_on() -> None:
    ledger = ledger_from(10, {r: range(10, 20) for r in READERS})
    healer = HoleHealer(interval_s=2.0, idle_s=20.0)
    caught_up = FakeConsumer(end=20)
    assert due(healer, caught_up, ledger, 0.0) is None
    assert due(healer, caught_up, ledger, 25.0) is None  # at the log end: nothing to read
    stalled = FakeConsumer(end=33)
    assert due(healer, stalled, ledger, 30.0) is None  # the clock restarted at the last check
    assert due(healer, stalled, ledger, 45.0) == (20, "no reader got past it for 20s (log end 33)")
