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
from worker.delivery.commit import CommitProtocol, HoleHealer

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


def due(healer: HoleHealer, end: int | None, ledger: CommitLedger, now: float):
    """One check of the healer, which read the log end ``end`` (None: unknown) at ``now``."""
    return healer.due(ledger, TP(TOPIC, 0), now, end)


def test_a_passed_over_record_is_re_read_at_the_second_sighting_then_backs_off() -> None:
    ledger = ledger_from(10, {"archive": range(10, 20), "tally": range(10, 20), "score": [10, 11, 12, 14, 15]})
    healer, consumer = HoleHealer(interval_s=2.0, idle_s=20.0), 20
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
    healer, consumer = HoleHealer(interval_s=2.0, idle_s=20.0), 20
    assert due(healer, consumer, ledger, 0.0) is None
    assert due(healer, consumer, ledger, 10.0) is None
    ledger.finish("score", TOPIC, 0, 12)  # progress restarts the clock
    assert due(healer, consumer, ledger, 12.0) is None
    assert due(healer, consumer, ledger, 31.0) is None
    assert due(healer, consumer, ledger, 32.0) == (13, "not finished by score for 20s while others are past it")


def test_a_partition_nobody_reads_on_is_re_read_only_if_the_log_goes_on() -> None:
    ledger = ledger_from(10, {r: range(10, 20) for r in READERS})
    healer = HoleHealer(interval_s=2.0, idle_s=20.0)
    caught_up = 20
    assert due(healer, caught_up, ledger, 0.0) is None
    assert due(healer, caught_up, ledger, 25.0) is None  # at the log end: nothing to read
    stalled = 33
    assert due(healer, stalled, ledger, 30.0) is None  # the clock restarted at the last check
    assert due(healer, stalled, ledger, 45.0) == (20, "no reader got past it for 20s (log end 33)")


def test_a_record_published_after_a_quiet_spell_gets_idle_s_like_any_other() -> None:
    """A fresh worker's first record: the position sat at the log end for 20 s, then a record
    came. Measured from the last sighting of the position, it was "idle for 20 s" the moment it
    arrived, and was re-read while the worker was still scoring it (delivered twice; the log
    said "no reader got past it for 20s"). The clock starts at the last check that saw the
    partition caught up."""
    ledger = CommitLedger({TOPIC: READERS})
    ledger.reset({(TOPIC, 0): 0})
    healer = HoleHealer(interval_s=2.0, idle_s=20.0)
    for now in range(0, 20, 2):  # an empty partition, checked every 2 s
        assert due(healer, 0, ledger, float(now)) is None
    assert due(healer, 1, ledger, 20.0) is None  # offset 0 published at 19.5 s, being scored
    assert due(healer, 1, ledger, 22.0) is None
    for r in READERS:
        ledger.finish(r, TOPIC, 0, 0)
    assert due(healer, 1, ledger, 24.0) is None  # finished: caught up again
    assert due(healer, 2, ledger, 40.0) is None  # offset 1 came after 24 s: its clock starts at 24
    assert due(healer, 2, ledger, 44.0) == (1, "no reader got past it for 20s (log end 2)")


def test_an_unknown_log_end_is_no_evidence_of_a_stall() -> None:
    ledger = ledger_from(10, {r: range(10, 20) for r in READERS})
    healer = HoleHealer(interval_s=2.0, idle_s=20.0)
    assert due(healer, 33, ledger, 0.0) is None
    assert due(healer, None, ledger, 30.0) is None  # broker unreachable at this check
    assert due(healer, 33, ledger, 32.0) == (20, "no reader got past it for 32s (log end 33)")


def test_log_ends_are_one_request_for_all_partitions_and_unknown_when_it_fails() -> None:
    from worker.delivery.commit import _log_ends

    class Consumer:
        def __init__(self, fail: bool) -> None:
            self.fail, self.asked = fail, []

        async def highwaters(self, *tps):
            self.asked.append(tps)
            if self.fail:
                raise ConnectionError("broker restarting")
            return {tp: 7 for tp in tps}

    tps = [TP(TOPIC, 0), TP(TOPIC, 1)]
    up, down = Consumer(False), Consumer(True)
    assert asyncio.run(_log_ends(up, tps)) == {TP(TOPIC, 0): 7, TP(TOPIC, 1): 7} and up.asked == [tuple(tps)]
    assert asyncio.run(_log_ends(down, tps)) == {}
    assert asyncio.run(_log_ends(up, [])) == {} and len(up.asked) == 1


def test_behind_counts_the_records_after_the_newest_in_hand_by_the_consumers_highwater() -> None:
    held = [SimpleNamespace(topic=TOPIC, partition=p) for p in (0, 1, 2)] + [SimpleNamespace(topic="other", partition=0)]
    ends = {0: 10, 1: 5, 2: None}

    def highwater(tp):
        if tp.topic != TOPIC:
            raise AssertionError("Partition is not assigned")  # what aiokafka raises
        return ends[tp.partition]

    protocol = CommitProtocol()
    assert protocol.behind(TOPIC, {0: 7}) == 0  # unsealed (unit tests): nothing known
    protocol.app = SimpleNamespace(consumer=SimpleNamespace(assignment=lambda: held, highwater=highwater))
    # partition 0: offsets 8 and 9 after 7; 1: caught up; 2: no fetch yet; 3: not held
    assert protocol.behind(TOPIC, {0: 7, 1: 4, 2: 0, 3: 0}) == 2
    assert protocol.behind(TOPIC, {1: 4}) == 0
