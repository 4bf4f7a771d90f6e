"""Avro single-object encoding of Sentinel events, checked against the Avro spec.

The fingerprint is recomputed here with an independent implementation of the spec's
Rabin CRC-64-AVRO, itself checked against Apache Avro's published vectors
(share/test/data/schema-tests.txt).
"""

from __future__ import annotations

import copy
import io
import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import fastavro
import pytest
from fastavro.schema import parse_schema, to_parsing_canonical_form

import contracts.codec as codec
from contracts.codec import AvroCodec, Schema
from contracts.errors import DecodeError

SCHEMA_DIR = Path(codec.__file__).resolve().parent
UTC = timezone.utc

# -- independent CRC-64-AVRO (Avro spec, "Schema Fingerprints") --------------------------

EMPTY = 0xC15D213AA4D7A795
_MASK = (1 << 64) - 1


def _fp_table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (EMPTY & -(fp & 1))
        table.append(fp & _MASK)
    return table


_FP_TABLE = _fp_table()


def crc64_avro(data: bytes) -> int:
    fp = EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _FP_TABLE[(fp ^ byte) & 0xFF]
    return fp & _MASK


def wire_fingerprint(raw_schema: dict) -> bytes:
    canonical = to_parsing_canonical_form(parse_schema(copy.deepcopy(raw_schema), _write_hint=False))
    return crc64_avro(canonical.encode("utf-8")).to_bytes(8, "little")


# Apache Avro share/test/data/schema-tests.txt: canonical form -> signed 64-bit fingerprint.
AVRO_VECTORS = [
    ('"null"', 7195948357588979594),
    ('"boolean"', -6970731678124411036),
    ('"int"', 8247732601305521295),
    ('"long"', -3434872931120570953),
    ('"double"', -8181574048448539266),
    ('{"name":"foo","type":"fixed","size":15}', 1756455273707447556),
    ('{"name":"PigValue","type":"record","fields":[{"name":"value","type":["null","int","long","PigValue"]}]}',
     -1759257747318642341),
]


@pytest.mark.parametrize("canonical,signed", AVRO_VECTORS)
def test_reference_crc64_matches_avro_published_vectors(canonical: str, signed: int) -> None:
    assert crc64_avro(canonical.encode()) == signed & _MASK


# -- records ------------------------------------------------------------------------------

def _raw(name: str) -> dict:
    return json.loads((SCHEMA_DIR / name).read_text())


def job_completed(**overrides) -> dict:
    t0 = datetime(2026, 3, 1, 12, 30, 5, 123000, tzinfo=UTC)
    event = {
        "job_id": "job-42",
        "model_id": "flux-dev",
        "model_version": "2026.1",
        "provider": "self_hosted",
        "niche": "headshot",
        "prompt": "a portrait, soft light, ünïcødé ✓",
        "seed": 2**40 + 7,
        "reference_image": b"\x00\x01ref\xff",
        "image": bytes(range(256)) * 3,
        "media_type": "image/webp",
        "requested_at": t0,
        "started_at": t0 + timedelta(milliseconds=250),
        "completed_at": t0 + timedelta(milliseconds=3_251),
        "delivered_at": t0 + timedelta(milliseconds=3_299),
        "cold_start": True,
        "cold_start_ms": 1234.5,
        "inference_ms": 1766.25,
        "encode_ms": 12.0,
        "gpu_type": "A100-80GB",
        "gpu_seconds": 3.001,
        "api_cost_usd": None,
        "node_id": "node-1",
        "image_ref": None,
        "reference_image_ref": None,
    }
    for field in _raw("job_completed.avsc")["fields"]:  # optional fields appended later: their defaults
        event.setdefault(field["name"], field.get("default"))
    event.update(overrides)
    return event


def job_scored(**overrides) -> dict:
    record = {
        "job_id": "job-42",
        "scorer_version": "sentinel-tiny-clip:seed0",
        "model_id": "flux-dev",
        "niche": "headshot",
        "scored_at": datetime(2026, 3, 1, 12, 31, 0, 7000, tzinfo=UTC),
        "clip_prompt_score": 27.125,
        "clip_reference_score": 0.5,
        "embedding": [0.5, -0.25, 0.125, 0.0],  # exactly representable as float32
        "flags": ["cold_start", "slow"],
        "requested_at": datetime(2026, 3, 1, 12, 30, 58, 250000, tzinfo=UTC),
    }
    record.update(overrides)
    return record


# -- round trips --------------------------------------------------------------------------

@pytest.mark.parametrize("overrides", [
    {},
    {"seed": None, "reference_image": None, "inference_ms": None, "encode_ms": None},
    {"provider": "api", "gpu_type": "none", "gpu_seconds": 0.0, "api_cost_usd": 0.04, "cold_start": False},
])
def test_job_completed_round_trip(overrides: dict) -> None:
    event = job_completed(**overrides)
    c = AvroCodec("JobCompleted")
    decoded = c.decode(c.encode(event))
    assert decoded == event
    for name in ("requested_at", "started_at", "completed_at", "delivered_at"):
        assert decoded[name].utcoffset() == timedelta(0)
        assert decoded[name].microsecond % 1000 == 0


def test_non_utc_timestamps_decode_to_the_same_instant_in_utc() -> None:
    plus2 = timezone(timedelta(hours=2))
    local = datetime(2026, 3, 1, 14, 30, 5, 123000, tzinfo=plus2)
    c = AvroCodec("JobCompleted")
    decoded = c.decode(c.encode(job_completed(requested_at=local)))
    assert decoded["requested_at"] == datetime(2026, 3, 1, 12, 30, 5, 123000, tzinfo=UTC)
    assert decoded["requested_at"].utcoffset() == timedelta(0)


def test_job_scored_round_trip() -> None:
    record = job_scored()
    c = AvroCodec("JobScored")
    assert c.decode(c.encode(record)) == record
    no_ref = job_scored(clip_reference_score=None, flags=[], embedding=[], requested_at=None)
    assert c.decode(c.encode(no_ref)) == no_ref


def test_job_scored_of_the_v1_schema_decodes_without_requested_at() -> None:
    """Records written before requested_at existed (contracts/history/job_scored.v1.avsc) still
    decode, with requested_at null (the FID drift then uses scored_at)."""
    old = {k: v for k, v in job_scored().items() if k != "requested_at"}
    writer = codec._load(Path(codec.SCHEMA_DIR) / "history" / "job_scored.v1.avsc")
    data = AvroCodec("JobScored", writer=writer).encode(old)
    assert AvroCodec("JobScored").decode(data) == {**old, "requested_at": None}


# -- framing ------------------------------------------------------------------------------

@pytest.mark.parametrize("name,file,record", [
    ("JobCompleted", "job_completed.avsc", job_completed()),
    ("JobScored", "job_scored.avsc", job_scored()),
])
def test_header_is_magic_plus_spec_fingerprint_little_endian(name: str, file: str, record: dict) -> None:
    raw = _raw(file)
    data = AvroCodec(name).encode(record)
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == wire_fingerprint(raw)
    assert codec.schema(name).fingerprint == wire_fingerprint(raw)
    # The body is a plain Avro binary datum of the record, readable with the schema file alone.
    body = io.BytesIO(data[10:])
    assert fastavro.schemaless_reader(body, parse_schema(raw)) == record
    assert body.tell() == len(data) - 10


def test_the_two_record_types_have_distinct_fingerprints() -> None:
    assert wire_fingerprint(_raw("job_completed.avsc")) != wire_fingerprint(_raw("job_scored.avsc"))


# -- decode errors ------------------------------------------------------------------------

def _reason(data, name: str = "JobCompleted") -> str:
    with pytest.raises(DecodeError) as info:
        AvroCodec(name).decode(data)
    assert isinstance(info.value, ValueError)
    return info.value.reason


@pytest.mark.parametrize("data", [
    b"",
    None,
    b"\xc3\x01\x00\x00",  # header cut short
    bytes(range(7, 200)),  # random-looking bytes without the magic
    b"\x01\xc3" + bytes(8) + b"body",  # magic bytes swapped
    b'{"job_id": "job-42"}',  # JSON, not Avro
])
def test_not_avro_single_object(data) -> None:
    assert _reason(data) == "not_avro_single_object"


def test_unknown_fingerprint() -> None:
    body = AvroCodec("JobCompleted").encode(job_completed())[10:]
    fake = (crc64_avro(b"no such schema") ^ 1).to_bytes(8, "little")
    assert _reason(b"\xc3\x01" + fake + body) == "unknown_schema_fingerprint"


def test_truncated_body_is_corrupt_at_every_cut() -> None:
    data = AvroCodec("JobCompleted").encode(job_completed(image=b"img", reference_image=None))
    for cut in range(1, len(data) - 10 + 1):
        assert _reason(data[:-cut]) == "corrupt_avro_body", cut


def test_trailing_bytes() -> None:
    data = AvroCodec("JobCompleted").encode(job_completed())
    assert _reason(data + b"\x00") == "trailing_bytes"
    assert _reason(data + data) == "trailing_bytes"


def test_wrong_record_type_both_ways() -> None:
    assert _reason(AvroCodec("JobScored").encode(job_scored()), "JobCompleted") == "wrong_record_type"
    assert _reason(AvroCodec("JobCompleted").encode(job_completed()), "JobScored") == "wrong_record_type"


def test_body_corruption_never_escapes_as_another_exception() -> None:
    import random

    data = AvroCodec("JobCompleted").encode(job_completed(image=b"img", reference_image=None))
    rng = random.Random(1234)
    c = AvroCodec("JobCompleted")
    for _ in range(3000):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            mutated[rng.randrange(10, len(mutated))] = rng.randrange(256)
        try:
            c.decode(bytes(mutated))
        except DecodeError as exc:
            assert exc.reason in {"corrupt_avro_body", "trailing_bytes"}


# -- schema evolution ---------------------------------------------------------------------

def _v2_raw() -> dict:
    """A newer JobCompleted: one optional field added."""
    raw = _raw("job_completed.avsc")
    raw["fields"].append({"name": "region", "type": ["null", "string"], "default": None})
    return raw


def _v0_raw() -> dict:
    """An older JobCompleted: before encode_ms (optional, default null) existed."""
    raw = _raw("job_completed.avsc")
    raw["fields"] = [f for f in raw["fields"] if f["name"] != "encode_ms"]
    return raw


def _schema(raw: dict) -> Schema:
    return Schema(name=raw["name"], parsed=parse_schema(copy.deepcopy(raw), _write_hint=False),
                  fingerprint=wire_fingerprint(raw))


@pytest.fixture()
def schema_dir_with_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the schema directory plus history/ versions, installed as the codec's registry."""
    for path in SCHEMA_DIR.glob("*.avsc"):
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "history").mkdir()
    (tmp_path / "history" / "job_completed.v0.avsc").write_text(json.dumps(_v0_raw()))
    (tmp_path / "history" / "job_completed.v2.avsc").write_text(json.dumps(_v2_raw()))
    real = codec._known_schemas
    monkeypatch.setattr(codec, "_known_schemas", lambda directory=tmp_path: real(directory))
    return tmp_path


def test_known_schemas_discovers_history_versions(schema_dir_with_history: Path) -> None:
    current, by_fp = codec._known_schemas()
    assert current["JobCompleted"].fingerprint == wire_fingerprint(_raw("job_completed.avsc"))
    current_files = sorted(p.name for p in codec.SCHEMA_DIR.glob("*.avsc"))
    assert {"job_completed.avsc", "job_scored.avsc"} <= set(current_files)
    expected = {wire_fingerprint(r) for r in [_raw(name) for name in current_files] + [_v0_raw(), _v2_raw()]}
    assert set(by_fp) == expected
    assert by_fp[wire_fingerprint(_v2_raw())].name == "JobCompleted"


def test_newer_writer_without_history_is_an_unknown_fingerprint() -> None:
    data = AvroCodec("JobCompleted", writer=_schema(_v2_raw())).encode({**job_completed(), "region": "eu"})
    assert data[2:10] == wire_fingerprint(_v2_raw())
    assert _reason(data) == "unknown_schema_fingerprint"


def test_newer_writer_decodes_with_current_reader(schema_dir_with_history: Path) -> None:
    event = job_completed()
    data = AvroCodec("JobCompleted", writer=_schema(_v2_raw())).encode({**event, "region": "eu-west"})
    assert data[2:10] == wire_fingerprint(_v2_raw())
    assert AvroCodec("JobCompleted").decode(data) == event  # the unknown field is dropped


def test_older_writer_decodes_with_reader_default(schema_dir_with_history: Path) -> None:
    event = job_completed(encode_ms=None)
    old = {k: v for k, v in event.items() if k != "encode_ms"}
    data = AvroCodec("JobCompleted", writer=_schema(_v0_raw())).encode(old)
    assert data[2:10] == wire_fingerprint(_v0_raw())
    decoded = AvroCodec("JobCompleted").decode(data)
    assert decoded == event and decoded["encode_ms"] is None


# -- images by reference (claim check): v1 = before image_ref / reference_image_ref -----------

REF = {"uri": "s3://bucket/objects/sha256/ab/" + "ab" * 32, "size": 2_345_678, "sha256": "ab" * 32}


def _v1_raw() -> dict:
    return json.loads((SCHEMA_DIR / "history" / "job_completed.v1.avsc").read_text())


def test_the_refs_are_appended_after_v1_with_null_defaults() -> None:
    current, v1 = _raw("job_completed.avsc"), _v1_raw()
    names = [f["name"] for f in current["fields"]]
    assert names[:len(v1["fields"])] == [f["name"] for f in v1["fields"]]
    added = current["fields"][len(v1["fields"]):]
    assert {"image_ref", "reference_image_ref"} <= {f["name"] for f in added}
    assert all(f["default"] is None for f in added)
    assert codec._known_schemas()[1][wire_fingerprint(v1)].name == "JobCompleted"  # shipped in history/


@pytest.mark.parametrize("refs", [
    {"image": b"", "image_ref": REF},
    {"image": b"", "image_ref": REF, "reference_image": None, "reference_image_ref": {**REF, "size": 7}},
])
def test_refs_round_trip(refs: dict) -> None:
    event = job_completed(**refs)
    c = AvroCodec("JobCompleted")
    assert c.decode(c.encode(event)) == event


def test_old_writer_new_reader_reads_no_refs() -> None:
    v1_fields = {f["name"] for f in _v1_raw()["fields"]}
    old = {k: v for k, v in job_completed().items() if k in v1_fields}
    data = AvroCodec("JobCompleted", writer=_schema(_v1_raw())).encode(old)
    assert data[2:10] == wire_fingerprint(_v1_raw())
    decoded = AvroCodec("JobCompleted").decode(data)  # the shipped history/ knows v1
    added = {f["name"]: f["default"] for f in _raw("job_completed.avsc")["fields"] if f["name"] not in v1_fields}
    assert added["image_ref"] is None and added["reference_image_ref"] is None
    assert decoded == {**old, **added}
    # the same with fastavro alone: v1 writer schema resolved against the current reader schema
    body = io.BytesIO(data[10:])
    assert fastavro.schemaless_reader(body, parse_schema(_v1_raw()), parse_schema(_raw("job_completed.avsc"))) == decoded


def test_new_writer_old_reader_drops_the_refs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader still on v1 (its schema dir: v1 current, the new schema in history/) decodes an
    event by reference: the refs are dropped, the empty image stays (so it dead-letters as an
    image that does not decode, never scored as something else)."""
    event = job_completed(image=b"", image_ref=REF)
    data = AvroCodec("JobCompleted").encode(event)
    old_dir = tmp_path / "old"
    (old_dir / "history").mkdir(parents=True)
    for path in SCHEMA_DIR.glob("*.avsc"):
        shutil.copy(path, old_dir / path.name)
    (old_dir / "job_completed.avsc").write_text(json.dumps(_v1_raw()))
    (old_dir / "history" / "job_completed.v2.avsc").write_text(json.dumps(_raw("job_completed.avsc")))
    real = codec._known_schemas
    monkeypatch.setattr(codec, "_known_schemas", lambda directory=old_dir: real(directory))
    decoded = AvroCodec("JobCompleted").decode(data)
    assert "image_ref" not in decoded and decoded["image"] == b""
    v1_fields = {f["name"] for f in _v1_raw()["fields"]}
    assert decoded == {k: v for k, v in event.items() if k in v1_fields}
    body = io.BytesIO(data[10:])
    assert fastavro.schemaless_reader(body, parse_schema(_raw("job_completed.avsc")), parse_schema(_v1_raw())) == decoded


def test_content_hash_of_an_inline_event_is_the_same_before_and_after_the_refs() -> None:
    with_refs = job_completed()
    without = {k: v for k, v in with_refs.items() if k not in ("image_ref", "reference_image_ref")}
    assert codec.content_hash(with_refs) == codec.content_hash(without)
    assert codec.content_hash(job_completed(image=b"", image_ref=REF)) != codec.content_hash(with_refs)
