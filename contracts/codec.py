"""Avro single-object encoding for Sentinel Stream events.

Every event on the wire is ``C3 01 | CRC-64-AVRO fingerprint (8 bytes, little endian) | body``
(the Avro spec's single-object encoding). The fingerprint names the *writer* schema, so a
reader can decode events written by an older or newer producer by resolving the writer schema
against its own reader schema; an unknown fingerprint is a clear, typed error, never a guess.

Schemas live beside this file: ``<name>.avsc`` is the current version of a record, and
``history/<name>.v<N>.avsc`` keeps earlier versions that may still be in the log.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping

import fastavro
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from contracts.errors import DecodeError

SCHEMA_DIR = Path(__file__).resolve().parent
MAGIC = b"\xc3\x01"
HEADER_LEN = len(MAGIC) + 8


@dataclass(frozen=True)
class Schema:
    name: str
    # as fastavro.parse_schema returns it, with its "parsed" hint: fastavro parses a schema
    # without the hint again on every read and write (a JobCompleted decode took 29 us, 14 with it)
    parsed: dict
    fingerprint: bytes  # 8 bytes, little endian, as on the wire

    @property
    def fingerprint_hex(self) -> str:
        return self.fingerprint.hex()


def _load(path: Path) -> Schema:
    raw = json.loads(path.read_text())
    canonical = to_parsing_canonical_form(parse_schema(raw, _write_hint=False))
    fp = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
    return Schema(name=raw["name"], parsed=parse_schema(raw), fingerprint=fp)


_schema_dir: Path = SCHEMA_DIR


def use_schema_dir(directory: Path | str | None) -> None:
    """Read schemas from ``directory`` (same layout: ``*.avsc`` + ``history/``) instead of the
    built-in ones; ``None`` restores the built-in set. A worker calls this at start-up
    (``SENTINEL_SCHEMA_DIR``), e.g. to be deployed with a newer writer schema in ``history/``
    before any producer writes it."""
    global _schema_dir
    _schema_dir = SCHEMA_DIR if directory is None else Path(directory).resolve()
    _known_schemas.cache_clear()


@lru_cache(maxsize=None)
def _known_schemas(directory: Path | None = None) -> tuple[dict[str, Schema], dict[bytes, Schema]]:
    """Current schema per record name, and every known version by fingerprint."""
    directory = _schema_dir if directory is None else directory
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
        self.record_name = record_name
        schema(record_name)  # fail early on an unknown record name
        # The writer schema defaults to the current one; tests pass an old/new version to
        # prove evolution works both ways.
        self._writer = writer

    @property
    def reader(self) -> Schema:
        # looked up on use, not at construction: codecs are registered at import, before a
        # worker may switch to another schema directory (use_schema_dir)
        return schema(self.record_name)

    @property
    def writer(self) -> Schema:
        return self._writer or self.reader

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
            reader = self.reader
            # written with the current schema itself: nothing to resolve
            record = fastavro.schemaless_reader(buf, writer.parsed, None if writer is reader else reader.parsed)
        except (EOFError, ValueError, IndexError, UnicodeDecodeError, OverflowError) as exc:
            raise DecodeError("corrupt_avro_body", f"{type(exc).__name__}: {exc}") from exc
        if buf.tell() != len(data):
            raise DecodeError("trailing_bytes", f"{len(data) - buf.tell()} bytes after the record")
        return record


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def content_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 of a decoded record's content, independent of the writer schema.

    Fields are taken in name order and null fields are skipped, so the same event written
    with an older or newer schema (an added optional field left null) hashes the same, while
    any change of a value (a byte of the image, a millisecond, a price) changes the hash.

    The byte stream hashed (stored in ``sentinel.jobs.content_hash``, so it never changes):
    a mapping is ``{`` + (key as a string, value) per non-null key in sorted order + ``}``;
    bytes ``b<len>:`` + the bytes; str ``s<len>:`` + UTF-8; bool ``T``/``F``; int ``i<n>;``;
    float ``f`` + ``float.hex()`` + ``;``; datetime ``t<microseconds since the epoch, UTC>;``
    (naive = UTC); list/tuple ``[`` + items + ``]``; None ``n``.
    """
    parts: list[bytes] = []
    _feed(parts.append, record)
    return hashlib.sha256(b"".join(parts)).hexdigest()


def _feed(out: Callable[[bytes], None], value: Any) -> None:
    # exact types first (what fastavro returns); isinstance only for the rare subclass
    kind = _KINDS.get(type(value))
    if kind is None:
        kind = _kind_of(value)
    kind(out, value)


def _feed_mapping(out: Callable[[bytes], None], value: Mapping[str, Any]) -> None:
    out(b"{")
    for key in sorted(value):
        item = value[key]
        if item is not None:
            name = _NAMES.get(key)
            if name is None:
                data = str(key).encode()
                name = b"s%d:%s" % (len(data), data)
                if type(key) is str and len(_NAMES) < 4096:  # record field names: a few dozen
                    _NAMES[key] = name
            out(name)
            _feed(out, item)
    out(b"}")


_NAMES: dict[str, bytes] = {}  # str mapping key -> its encoded form (1 == True: only str keys)


def _feed_bytes(out: Callable[[bytes], None], value: Any) -> None:
    data = bytes(value)
    out(b"b%d:" % len(data))
    out(data)


def _feed_str(out: Callable[[bytes], None], value: str) -> None:
    data = value.encode()
    out(b"s%d:" % len(data))
    out(data)


def _feed_datetime(out: Callable[[bytes], None], value: datetime) -> None:
    ts = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
    delta = ts - _EPOCH
    out(b"t%d;" % ((delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds))


def _feed_list(out: Callable[[bytes], None], value: Any) -> None:
    out(b"[")
    for item in value:
        _feed(out, item)
    out(b"]")


_KINDS: dict[type, Callable[[Callable[[bytes], None], Any], None]] = {
    dict: _feed_mapping,
    bytes: _feed_bytes,
    bytearray: _feed_bytes,
    memoryview: _feed_bytes,
    str: _feed_str,
    bool: lambda out, v: out(b"T" if v else b"F"),
    int: lambda out, v: out(b"i%d;" % v),
    float: lambda out, v: out(b"f" + v.hex().encode() + b";"),
    datetime: _feed_datetime,
    list: _feed_list,
    tuple: _feed_list,
    type(None): lambda out, v: out(b"n"),
}


def _kind_of(value: Any) -> Callable[[Callable[[bytes], None], Any], None]:
    # subclasses, in the order that decides them (bool before int, datetime is not a str...)
    for base, kind in ((Mapping, _feed_mapping), ((bytes, bytearray, memoryview), _feed_bytes), (str, _feed_str),
                       (bool, _KINDS[bool]), (int, _KINDS[int]), (float, _KINDS[float]),
                       (datetime, _feed_datetime), ((list, tuple), _feed_list)):
        if isinstance(value, base):
            return kind
    raise TypeError(f"content_hash: unsupported value type {type(value).__name__}")
