"""JobCompleted gained guard-mode fields (request_id, attempt, delivered, guard verdict) at the
end, all optional with null defaults: events written before them and readers that predate them
keep working, and an old event hashes the same read either way (the duplicate gate's hash).

The old schema is contracts/history/job_completed.v1.avsc; resolution is checked with fastavro
directly (schemaless writer/reader), independent of contracts.codec, and then through the codec.
"""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import fastavro
from fastavro.schema import parse_schema

import contracts.codec as codec
from contracts.codec import AvroCodec, content_hash

DIR = Path(codec.__file__).resolve().parent
OLD = json.loads((DIR / "history" / "job_completed.v1.avsc").read_text())
NEW = json.loads((DIR / "job_completed.avsc").read_text())
GUARD_FIELDS = ["request_id", "attempt", "delivered", "guard_passed", "guard_score", "guard_failed_checks",
                "guard_checks", "guard_rubric_version", "guard_scorer_version", "guard_ms", "guard_error"]
UTC = timezone.utc


def old_event() -> dict:
    t0 = datetime(2026, 11, 2, 8, 0, 0, 250000, tzinfo=UTC)
    return {"job_id": "j-1", "model_id": "sd-tiny", "model_version": "1", "provider": "self_hosted",
            "niche": "product", "prompt": "a mug", "seed": 7, "reference_image": None, "image": b"\x00img",
            "media_type": "image/png", "requested_at": t0, "started_at": t0 + timedelta(milliseconds=5),
            "completed_at": t0 + timedelta(milliseconds=900), "delivered_at": t0 + timedelta(milliseconds=950),
            "cold_start": False, "cold_start_ms": 0.0, "inference_ms": 880.0, "encode_ms": 3.0, "gpu_type": "cpu",
            "gpu_seconds": 0.9, "api_cost_usd": None, "node_id": "n1"}


def guarded_event() -> dict:
    checks = [{"name": "blank", "value": 0.4, "threshold": 2.0, "passed": False, "reason": "near-uniform image"},
              {"name": "resolution", "value": None, "threshold": None, "passed": True, "reason": ""}]
    return {**old_event(), "job_id": "j-1.a2", "request_id": "j-1", "attempt": 2, "delivered": False,
            "guard_passed": False, "guard_score": 12.5, "guard_failed_checks": ["blank"], "guard_checks": checks,
            "guard_rubric_version": "rubric-3", "guard_scorer_version": "tiny-clip-1", "guard_ms": 4.25,
            "guard_error": None}


def _write(schema: dict, record: dict) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parse_schema(json.loads(json.dumps(schema))), record)
    return buf.getvalue()


def _read(body: bytes, writer: dict, reader: dict) -> dict:
    return fastavro.schemaless_reader(io.BytesIO(body), parse_schema(json.loads(json.dumps(writer))),
                                      parse_schema(json.loads(json.dumps(reader))))


def test_new_fields_are_appended_at_the_end_with_null_defaults() -> None:
    old_names = [f["name"] for f in OLD["fields"]]
    new_fields = NEW["fields"]
    assert [f["name"] for f in new_fields[:len(old_names)]] == old_names
    added = {f["name"]: f for f in new_fields[len(old_names):]}
    assert set(GUARD_FIELDS) <= set(added)
    for name in GUARD_FIELDS:
        assert added[name]["type"][0] == "null" and added[name]["default"] is None, name


def test_old_writer_new_reader_fills_nulls() -> None:
    got = _read(_write(OLD, old_event()), OLD, NEW)
    assert {k: got[k] for k in old_event()} == old_event()
    assert all(got[name] is None for name in GUARD_FIELDS)


def test_new_writer_old_reader_drops_guard_fields() -> None:
    got = _read(_write(NEW, guarded_event()), NEW, OLD)
    assert got == {**old_event(), "job_id": "j-1.a2"}


def test_codec_reads_history_v1_events_and_hash_is_unchanged() -> None:
    old_writer = codec._load(DIR / "history" / "job_completed.v1.avsc")
    data = AvroCodec("JobCompleted", writer=old_writer).encode(old_event())
    decoded = AvroCodec("JobCompleted").decode(data)
    assert all(decoded[name] is None for name in GUARD_FIELDS)
    # the duplicate gate compares content hashes: read with the new reader it is the old one's
    assert content_hash(decoded) == content_hash(old_event())


def test_guarded_event_round_trips_through_the_codec() -> None:
    c = AvroCodec("JobCompleted")
    event = guarded_event()
    decoded = c.decode(c.encode(event))
    assert {k: decoded[k] for k in event} == event
