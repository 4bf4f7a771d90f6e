"""Triage (worker/stages/triage.py): each record decoded and checked once per batch, with the
contract's reasons; content hashes as contracts.codec computes them."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from conftest import make_event
from config.settings import load_settings
from contracts.codec import AvroCodec, content_hash
from worker.stages import triage as triage_mod
from worker.stages.triage import Accepted, Rejected, Triage

CODEC = AvroCodec("JobCompleted")


def record(partition: int, offset: int, value: bytes) -> SimpleNamespace:
    return SimpleNamespace(value=value, key=b"k", message=SimpleNamespace(partition=partition, offset=offset))


@pytest.fixture
def triage(tmp_path) -> Triage:
    settings = load_settings(env={}, data_dir=tmp_path)
    return Triage(settings.pricing(), settings.max_image_bytes)


@pytest.fixture
def decodes(monkeypatch):
    calls = []
    real = triage_mod.codecs.decode

    def counting(name, data):
        calls.append(name)
        return real(name, data)

    monkeypatch.setattr(triage_mod.codecs, "decode", counting)
    return calls


def test_each_source_offset_is_decoded_once_per_batch(triage, decodes) -> None:
    events = [make_event(i) for i in range(5)]
    batch = [record(i % 2, i, CODEC.encode(e)) for i, e in enumerate(events)]
    batch += [batch[0], record(1, 9, b"not avro")]  # a re-fetched copy and garbage
    accepted, rejected = triage(batch)
    assert len(decodes) == 6  # 5 events + the garbage; the re-fetched copy skipped
    assert [(a.partition, a.offset) for a in accepted] == [(i % 2, i) for i in range(5)]
    assert [a.event["job_id"] for a in accepted] == [e["job_id"] for e in events]
    assert rejected == [Rejected(b"not avro", b"k", 1, 9, "DecodeError", "not_avro_single_object",
                                 rejected[0].detail)]


def test_unpriced_gpu_and_unknown_model_are_rejected_with_reasons(tmp_path, triage) -> None:
    from worker.stages.gate import Catalog

    unpriced = {**make_event(0), "gpu_type": "TPU-v9"}
    unknown = make_event(1)
    strict = Triage(triage.pricing, triage.max_image_bytes, Catalog({"nobody"}, None))
    assert triage.one(CODEC.encode(unpriced), None, 0, 0).reason == "unpriced_gpu_type"
    assert strict.one(CODEC.encode(unknown), None, 0, 1).reason == "unknown_model"
    assert isinstance(triage.one(CODEC.encode(unknown), None, 0, 1), Accepted)


def test_content_hash_is_the_codecs_and_computed_once(triage, monkeypatch) -> None:
    item = triage.one(CODEC.encode(make_event(3)), None, 0, 0)
    expected = content_hash(item.event)
    calls = []
    monkeypatch.setattr(triage_mod, "content_hash", lambda e: calls.append(1) or expected)
    assert item.content_hash() == expected and item.content_hash() == expected
    assert len(calls) == 1
