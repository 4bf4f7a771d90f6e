"""Trace files: JSON Lines, a JSON array or Parquet, read row by row and written whole.

Production exports are messy, so :func:`load_trace` never lets one bad row cost the others: every
row that breaks a rule is reported by its 1-based line (JSON Lines) or row (Parquet) number with a
reason a person can act on, and every good row is returned. :func:`read_trace` is the strict
streaming reader: it stops at the first bad row. :func:`write_trace` writes a file whole or not
at all.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from inference.trace_row import FIELDS, TIMESTAMPS, InvalidTraceRow, TraceRow, parse_row

log = logging.getLogger(__name__)

_JSON_SUFFIXES = (".jsonl", ".json")
_PARQUET_SUFFIXES = (".parquet",)

PARQUET_SCHEMA = pa.schema([
    ("job_id", pa.string()), ("model", pa.string()), ("model_version", pa.string()), ("provider", pa.string()),
    ("niche", pa.string()), ("prompt", pa.string()),
    *[(name, pa.string()) for name in TIMESTAMPS],  # ISO-8601, the same text as in JSON Lines
    ("cold_start", pa.bool_()), ("cold_start_ms", pa.float64()), ("gpu_type", pa.string()),
    ("gpu_seconds", pa.float64()), ("api_cost_usd", pa.float64()), ("seed", pa.int64()),
    ("reference_image", pa.string()),
])


class TraceFormatError(ValueError):
    """A trace that cannot be read at all (unknown extension, unreadable Parquet), or — from the
    strict :func:`read_trace` — the first invalid row."""


@dataclass(frozen=True)
class TraceError:
    """One rejected row: where it is in the file, its job_id if it had a usable one, and why."""

    line: int
    job_id: str | None
    reason: str
    unit: str = "line"  # "line" for JSON Lines, "row" for Parquet / a JSON array

    def __str__(self) -> str:
        return f"{self.unit} {self.line}: {self.reason}"


# --- reading ---------------------------------------------------------------------------------

def _raw_rows(path: Path) -> Iterator[tuple[int, str, Any]]:
    """(position, unit, decoded record or a problem string) for every row of the file."""
    suffix = path.suffix.lower()
    if suffix in _PARQUET_SUFFIXES:
        try:
            pf = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as exc:
            raise TraceFormatError(f"{path}: not a readable Parquet file ({exc})") from exc
        position = 0
        for batch in pf.iter_batches(batch_size=65_536):
            for record in batch.to_pylist():
                position += 1
                yield position, "row", record
    elif suffix in _JSON_SUFFIXES:
        with path.open("rb") as fh:
            head = fh.read(4096).lstrip()
            fh.seek(0)
            if suffix == ".json" and head.startswith(b"["):
                try:
                    records = json.load(fh)
                except (ValueError, UnicodeDecodeError) as exc:
                    raise TraceFormatError(f"{path}: not valid JSON ({exc})") from exc
                for position, record in enumerate(records, start=1):
                    yield position, "row", record
                return
            for position, line in enumerate(fh, start=1):
                if not line.strip():
                    continue  # blank lines are not rows (but still count as lines)
                try:
                    yield position, "line", json.loads(line)
                except UnicodeDecodeError:
                    yield position, "line", "not UTF-8 text"
                except json.JSONDecodeError as exc:
                    yield position, "line", f"not valid JSON ({exc.msg} at column {exc.colno})"
    else:
        raise TraceFormatError(f"{path}: unknown trace format {path.suffix!r}; use .jsonl, .json or .parquet")


def _rows(path: Path) -> Iterator[tuple[TraceRow | None, TraceError | None]]:
    """Each row of the file as a TraceRow or the TraceError saying why it was rejected."""
    seen: dict[str, int] = {}  # job_id -> position of the accepted row
    unknown: set[str] = set()
    for position, unit, record in _raw_rows(path):
        if isinstance(record, str):
            yield None, TraceError(position, None, record, unit)
            continue
        if not isinstance(record, dict):
            yield None, TraceError(position, None, f"a row must be a JSON object, got {type(record).__name__}", unit)
            continue
        unknown.update(set(record) - set(FIELDS))
        job_id = record.get("job_id") if isinstance(record.get("job_id"), str) and record.get("job_id") else None
        try:
            row = parse_row(record)
        except InvalidTraceRow as exc:
            yield None, TraceError(position, job_id, "; ".join(exc.problems), unit)
            continue
        if row.job_id in seen:
            yield None, TraceError(position, row.job_id,
                                   f"duplicate job_id {row.job_id!r} (first seen on {unit} {seen[row.job_id]})", unit)
            continue
        seen[row.job_id] = position
        object.__setattr__(row, "line", position)
        yield row, None
    if unknown:
        log.warning("%s: ignored unknown trace field(s) %s", path, sorted(unknown))


def read_trace(path: Path) -> Iterator[TraceRow]:
    """Stream the rows of a trace (.jsonl, .json or .parquet); the first bad row raises
    TraceFormatError with its line number. Use :func:`load_trace` to keep going past bad rows."""
    path = Path(path)
    for row, error in _rows(path):
        if error is not None:
            raise TraceFormatError(f"{path}: {error}")
        yield row


def load_trace(path: Path) -> tuple[list[TraceRow], list[TraceError]]:
    """All good rows in file order, and one TraceError per rejected row (nothing else dropped)."""
    path = Path(path)
    rows: list[TraceRow] = []
    errors: list[TraceError] = []
    for row, error in _rows(path):
        if error is not None:
            errors.append(error)
        else:
            rows.append(row)
    if errors:
        log.warning("%s: rejected %d of %d rows (first: %s)", path, len(errors), len(rows) + len(errors), errors[0])
    return rows, errors


# --- writing ---------------------------------------------------------------------------------

def write_trace(rows: Iterable[TraceRow], path: Path) -> int:
    """Write rows as JSON Lines (.jsonl) or Parquet (.parquet); returns how many.

    The file appears whole or not at all (written beside it, then renamed), so a crashed export
    never leaves a truncated trace that would replay as a shorter quarter.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", *_PARQUET_SUFFIXES):
        raise TraceFormatError(f"{path}: cannot write {path.suffix!r}; use .jsonl or .parquet")
    tmp = path.with_name(f".{path.name}.tmp")
    count = 0
    try:
        if suffix == ".jsonl":
            with tmp.open("w", encoding="utf-8") as fh:
                for row in rows:
                    fh.write(json.dumps(row.to_record(), allow_nan=False, ensure_ascii=False) + "\n")
                    count += 1
        else:
            with pq.ParquetWriter(tmp, PARQUET_SCHEMA) as writer:
                batch: list[dict[str, Any]] = []
                for row in rows:
                    batch.append(row.to_record())
                    if len(batch) == 50_000:
                        writer.write_table(pa.Table.from_pylist(batch, schema=PARQUET_SCHEMA))
                        count += len(batch)
                        batch = []
                writer.write_table(pa.Table.from_pylist(batch, schema=PARQUET_SCHEMA))
                count += len(batch)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("wrote %d trace rows to %s", count, path)
    return count
