"""Shared triage (worker/app.py ``Triaged``): each jobs.completed record decoded and checked
once for all the agents that read it, with the same results as decoding it per agent."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from conftest import make_event
from contracts.codec import AvroCodec, content_hash
from worker import app as app_mod
from worker.app import Accepted, Rejected, Triaged, triage
from config.settings import load_settings

CODEC = AvroCodec("JobCompleted")


@pytest.fixture
def runtime(tmp_path):
    settings = load_settings(env={}, data_dir=tmp_path)
    return SimpleNamespace(settings=settings, pricing=settings.pricing(), catalog=None)


def record(partition: int, offset: int, value: bytes) -> SimpleNamespace:
    return SimpleNamespace(value=value, key=b"k", message=SimpleNamespace(partition=partition, offset=offset))


@pytest.fixture
def decodes(monkeypatch):
    """How many times the worker's Avro decode ran."""
    calls = []
    real = app_mod.codecs.decode

    def counting(name, data):
        calls.append(name)
        return real(name, data)

    monkeypatch.setattr(app_mod.codecs, "decode", counting)
    return calls


def test_each_record_is_decoded_once_for_all_readers(runtime, decodes) -> None:
    events = [make_event(i) for i in range(5)]
    batch = [record(i % 2, i, CODEC.encode(e)) for i, e in enumerate(events)] + [record(1, 9, b"not avro")]
    shared = Triaged(lambda: 3)
    runs = [triage(runtime, batch, shared) for _ in range(3)]
    assert len(decodes) == 6  # 5 events + the bad record, once each, not 3 times
    alone = triage(runtime, batch)  # no sharing: what each agent used to compute
    for accepted, rejected in runs:
        assert [(a.partition, a.offset, a.event) for a in accepted] == \
            [(a.partition, a.offset, a.event) for a in alone[0]]
        assert rejected == alone[1] and rejected[0].reason == "not_avro_single_object"
    # the three readers took every entry: nothing left behind
    assert len(shared) == 0 and shared.size == 0
    assert (shared.hits, shared.misses) == (12, 6)
    # a fourth take (a record read again after a seek) decodes again, to the same result
    again, _ = triage(runtime, batch[:1], shared)
    assert again[0].event == events[0] and len(decodes) == 7 + 6  # + the unshared run's 6


def test_a_single_reader_keeps_nothing(runtime, decodes) -> None:
    shared = Triaged(lambda: 1)
    batch = [record(0, i, CODEC.encode(make_event(i))) for i in range(3)]
    triage(runtime, batch, shared)
    triage(runtime, batch, shared)
    assert len(shared) == 0 and len(decodes) == 6


def test_bounds_drop_the_oldest_entries(runtime) -> None:
    values = [CODEC.encode(make_event(i)) for i in range(10)]
    shared = Triaged(lambda: 2, max_items=4)
    triage(runtime, [record(0, i, v) for i, v in enumerate(values)], shared)
    assert len(shared) == 4 and shared.take((0, 5)) is None and shared.take((0, 6)) is not None
    assert shared.size == sum(len(v) for v in values[7:])

    cap = 2 * max(len(v) for v in values) + 1
    keep = max(k for k in range(11) if sum(len(v) for v in values[10 - k:]) <= cap)  # newest that fit
    by_bytes = Triaged(lambda: 2, max_bytes=cap)
    triage(runtime, [record(0, i, v) for i, v in enumerate(values)], by_bytes)
    assert len(by_bytes) == keep >= 2 and by_bytes.take((0, 9 - keep)) is None
    assert all(by_bytes.take((0, i)) is not None for i in range(10 - keep, 10))
    assert by_bytes.size == 0


def test_content_hash_is_computed_once_and_equals_the_codecs() -> None:
    event = CODEC.decode(CODEC.encode(make_event(3)))
    item = Accepted(event, 0, 1)
    assert item.content_hash() == content_hash(event)
    item.event = {}  # memoized: not recomputed (agents must not change a shared event)
    assert item.content_hash() == content_hash(event)


def test_rejected_records_are_shared_too(runtime) -> None:
    shared = Triaged(lambda: 2)
    bad = record(3, 4, CODEC.encode({**make_event(1), "gpu_seconds": -1.0}))
    _, first = triage(runtime, [bad], shared)
    _, second = triage(runtime, [bad], shared)
    assert isinstance(first[0], Rejected) and first[0] is second[0] and len(shared) == 0
