"""Rows of a production-history file for ``sentinel import``: JSON Lines, a JSON array, CSV or
Parquet.

A history row is a trace row (inference/trace_row.py: job_id, model, model_version, provider,
niche, prompt, the four timestamps, cold_start, cold_start_ms, gpu_type, gpu_seconds,
api_cost_usd) plus where its images are:

    image            path or URL of the output image as delivered (required): a path relative to
                     the history file's folder, an absolute path, file://, or any fsspec URL
                     (s3://, gs://, https://...)
    reference_image  path or URL of the customer's photo, when the niche uses one (optional)
    media_type       image/png, image/jpeg or image/webp (optional: read from the image bytes,
                     and when given it must match them)
    seed             optional here (history rarely knows it); null in the event when absent

Every row that cannot be used is reported by its 1-based line (JSON Lines, CSV: the header is
line 1) or row (Parquet, JSON array) number with the reason; the good rows are returned.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from inference.trace_files import TraceFormatError, _raw_rows
from inference.trace_row import TIMESTAMPS, InvalidTraceRow, TraceRow, parse_row

IMAGE_FIELDS = ("image", "media_type")
_CSV_NUMBERS = ("cold_start_ms", "gpu_seconds", "api_cost_usd")
_CSV_BOOLS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}
_INTEGER = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class RowError:
    """One row that was not imported: where it is in the file, its job id when it had one, why."""

    position: int
    unit: str  # "line" (JSON Lines, CSV) or "row" (Parquet, JSON array)
    job_id: str | None
    reason: str

    def __str__(self) -> str:
        return f"{self.unit} {self.position}{f' ({self.job_id})' if self.job_id else ''}: {self.reason}"


@dataclass(frozen=True)
class HistoryRow:
    """A valid trace row and where its images are (paths or URLs, as written in the file)."""

    trace: TraceRow
    image: str
    reference_image: str | None
    media_type: str | None
    seed_known: bool
    position: int
    unit: str

    @property
    def job_id(self) -> str:
        return self.trace.job_id

    def error(self, reason: str) -> RowError:
        return RowError(self.position, self.unit, self.job_id, reason)


def raw_records(path: Path) -> Iterator[tuple[int, str, Any]]:
    """(position, unit, record or a problem string) for every row of the file."""
    if path.suffix.lower() == ".csv":
        yield from _csv_records(path)
    else:
        yield from _raw_rows(path)


def _csv_records(path: Path) -> Iterator[tuple[int, str, Any]]:
    """CSV rows as records typed like JSON: empty cells are absent, numbers and booleans parsed
    where they parse (a cell that does not stays text, and the row rules name it)."""
    try:
        fh = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise TraceFormatError(f"{path}: cannot read ({exc})") from exc
    with fh:
        reader = csv.DictReader(fh)
        try:
            for record in reader:
                line = reader.line_num
                if None in record:
                    yield line, "line", f"{len(record[None])} more cells than the header's {len(reader.fieldnames)} columns"
                    continue
                yield line, "line", _typed({k: v for k, v in record.items() if v is not None and v.strip() != ""})
        except (csv.Error, UnicodeDecodeError) as exc:
            yield reader.line_num, "line", f"not valid CSV ({exc})"


def _typed(record: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = dict(record)
    for name in _CSV_NUMBERS:
        if name in out:
            try:
                out[name] = float(out[name])
            except ValueError:
                pass
    if "cold_start" in out and out["cold_start"].strip().lower() in _CSV_BOOLS:
        out["cold_start"] = _CSV_BOOLS[out["cold_start"].strip().lower()]
    if "seed" in out and _INTEGER.fullmatch(out["seed"].strip()):
        out["seed"] = int(out["seed"])
    for name in TIMESTAMPS:  # epoch milliseconds in a CSV cell
        if name in out and _INTEGER.fullmatch(out[name].strip()):
            out[name] = int(out[name])
    return out


def parse_history_row(position: int, unit: str, record: Any) -> HistoryRow:
    """A HistoryRow, or ValueError listing every problem of the row."""
    if isinstance(record, str):
        raise ValueError(record)
    if not isinstance(record, dict):
        raise ValueError(f"a row must be an object, got {type(record).__name__}")
    problems: list[str] = []
    image = record.get("image")
    if not isinstance(image, str) or not image.strip():
        problems.append("missing field: image (the output image's path or URL)")
    reference = record.get("reference_image")
    if reference is not None and not isinstance(reference, str):
        problems.append(f"reference_image must be a path or URL, got {type(reference).__name__}")
    media_type = record.get("media_type")
    if media_type is not None and not isinstance(media_type, str):
        problems.append(f"media_type must be a string, got {type(media_type).__name__}")
    seed_known = record.get("seed") is not None
    fields = {k: v for k, v in record.items() if k not in IMAGE_FIELDS}
    if not seed_known:
        fields["seed"] = 0  # a placeholder for the trace rules; the event says null
    try:
        trace = parse_row(fields)
    except InvalidTraceRow as exc:
        problems.extend(exc.problems)
        trace = None
    if problems or trace is None:
        raise ValueError("; ".join(problems))
    return HistoryRow(trace, image.strip(), (reference or "").strip() or None, media_type or None, seed_known,
                      position, unit)


def load_history(path: Path) -> tuple[list[HistoryRow], list[RowError]]:
    """Every good row in file order, and one RowError per row refused by its fields (a repeated
    job id included: the first row of an id is the one imported)."""
    rows: list[HistoryRow] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    for position, unit, record in raw_records(Path(path)):
        job_id = record.get("job_id") if isinstance(record, dict) and isinstance(record.get("job_id"), str) else None
        try:
            row = parse_history_row(position, unit, record)
        except ValueError as exc:
            errors.append(RowError(position, unit, job_id or None, str(exc)))
            continue
        if row.job_id in seen:
            errors.append(row.error(f"duplicate job_id (first on {unit} {seen[row.job_id]})"))
            continue
        seen[row.job_id] = position
        rows.append(row)
    return rows, errors
