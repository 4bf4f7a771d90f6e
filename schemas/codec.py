"""Avro single-object encoding for Sentinel Stream events.

Every event on the wire is ``C3 01 | CRC-64-AVRO fingerprint (8 bytes, little endian) | body``
(the Avro spec's single-object encoding). The fingerprint names the *writer* schema, so a
reader can decode events written by an older or newer producer by resolving the writer schema
against its own reader schema; an unknown fingerprint is a clear, typed error, never a guess.

Schemas live beside this file: ``<name>.avsc`` is the current version of a record, and
``history/<name>.v<N>.avsc`` keeps earlier versions that may still be in the log.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

SCHEMA_DIR = Path(__file__).resolve().parent
MAGIC = b"\xc3\x01"
HEADER_LEN = len(MAGIC) + 8


class DecodeError(ValueError):
    """An event that cannot be decoded. ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Schema:
    name: str
    parsed: dict
    fingerprint: bytes  # 8 bytes, little endian, as on the wire

    @property
    def fingerprint_hex(self) -> str:
        return self.fingerprint.hex()


def _load(path: Path) -> Schema:
    raw = json.loads(path.read_text())
    parsed = parse_schema(raw, _write_hint=False)
    fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))
    return Schema(name=raw["name"], parsed=parsed, fingerprint=fp)


@lru_cache(maxsize=None)
def _known_schemas(directory: Path = SCHEMA_DIR) -> tuple[dict[str, Schema], dict[bytes, Schema]]:
    """Current schema per record name, and every known version by fingerprint."""
    current: dict[str, Schema] = {}
    by_fp: dict[bytes, Schema] = {}
    for path in sorted(directory.glob("*.avsc")):
        schema = _load(path)
        current[schema.name] = schema
        by_fp[schema.fingerprint] = schema
    for path in sorted((directory / "history").glob("*.avsc")):
        schema = _load(path)
        by_fp.setdefault(schema.fingerprint, schema)
    return current, by_fp


def schema(name: str) -> Schema:
    """The current (reader) schema of record ``name``, e.g. ``"JobCompleted"``."""
    current, _ = _known_schemas()
    try:
        return current[name]
    except KeyError:
        raise KeyError(f"no schema named {name!r}; known: {sorted(current)}") from None


class AvroCodec:
    """Encode/decode one record type with single-object framing and schema resolution."""

    def __init__(self, record_name: str, writer: Schema | None = None) -> None:
        self.reader = schema(record_name)
        # The writer schema defaults to the current one; tests pass an old/new version to
        # prove evolution works both ways.
        self.writer = writer or self.reader

    def encode(self, record: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        buf.write(MAGIC)
        buf.write(self.writer.fingerprint)
        fastavro.schemaless_writer(buf, self.writer.parsed, record, strict_allow_default=True)
        return buf.getvalue()

    def decode(self, data: bytes) -> dict[str, Any]:
        if data is None or len(data) < HEADER_LEN or data[:2] != MAGIC:
            raise DecodeError("not_avro_single_object", f"{len(data or b'')} bytes without the C3 01 header")
        fp = bytes(data[2:HEADER_LEN])
        _, by_fp = _known_schemas()
        writer = by_fp.get(fp)
        if writer is None:
            raise DecodeError("unknown_schema_fingerprint", fp.hex())
        if writer.name != self.reader.name:
            raise DecodeError("wrong_record_type", f"got {writer.name}, expected {self.reader.name}")
        buf = io.BytesIO(data)
        buf.seek(HEADER_LEN)
        try:
            record = fastavro.schemaless_reader(buf, writer.parsed, self.reader.parsed)
        except (EOFError, ValueError, IndexError, UnicodeDecodeError, OverflowError) as exc:
            raise DecodeError("corrupt_avro_body", f"{type(exc).__name__}: {exc}") from exc
        if buf.tell() != len(data):
            raise DecodeError("trailing_bytes", f"{len(data) - buf.tell()} bytes after the record")
        return record
