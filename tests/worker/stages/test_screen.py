"""The screen (worker/stages/screen.py): triage and the gate's judgement in one hand-over to the
gate's thread; an outage of the duplicate lookup is waited out with triage done once, and a
triage that fails (a bug, not an outage) fails the batch at once."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import make_event
from config.settings import load_settings
from contracts.codec import AvroCodec
from worker.delivery.retry import NotRetried
from worker.stages.gate import Gate
from worker.stages.screen import Screen
from worker.stages.triage import Triage
from worker_fakes import Event

CODEC = AvroCodec("JobCompleted")


class CountingTriage(Triage):
    def __init__(self, fail: bool = False) -> None:
        settings = load_settings(env={})
        super().__init__(settings.pricing(), settings.max_image_bytes)
        self.calls, self.threads, self.fail = 0, set(), fail

    def __call__(self, events):
        self.calls += 1
        self.threads.add(threading.current_thread().name)
        if self.fail:
            raise RuntimeError("a bug in triage")
        return super().__call__(events)


def gate_with_outage(down: int) -> Gate:
    state = {"down": down}

    def lookup(ids):
        if state["down"]:
            state["down"] -= 1
            raise ConnectionError("ClickHouse unavailable")
        return {}

    gate = Gate(lookup, executor=ThreadPoolExecutor(1, "gate"))
    gate.restart({0: 0})
    return gate


def events(n: int) -> list[Event]:
    return [Event(CODEC.encode(make_event(i)), 0, i) for i in range(n)] + [Event(b"garbage", 0, n)]


def test_an_outage_is_waited_out_with_triage_done_once_in_the_gate_thread() -> None:
    triage = CountingTriage()
    out = asyncio.run(asyncio.wait_for(Screen(triage, gate_with_outage(down=1))(events(4)), 20))
    assert [a.offset for a in out.kept] == [0, 1, 2, 3]
    assert [(r.offset, r.reason) for r in out.rejected] == [(4, "not_avro_single_object")]
    assert sorted(out.pixels) == [(0, o) for o in range(4)]  # decoded once, for the scorer
    assert triage.calls == 1 and all(name.startswith("gate") for name in triage.threads)


def test_a_failing_triage_fails_the_batch_at_once() -> None:
    triage = CountingTriage(fail=True)
    with pytest.raises(NotRetried, match="triage failed: RuntimeError: a bug in triage"):
        asyncio.run(asyncio.wait_for(Screen(triage, gate_with_outage(down=0))(events(2)), 10))
    assert triage.calls == 1
