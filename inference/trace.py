"""Production-traffic traces: one row per job, read, validated, written and generated for replay.

A trace is JSON Lines (``.jsonl``; ``.json`` may also hold one JSON array) or Parquet
(``.parquet``) with one row per job:

    job_id, model, model_version, provider ("self-hosted" | "api"), niche, prompt,
    requested_at, started_at, completed_at, delivered_at, cold_start, cold_start_ms,
    gpu_type, gpu_seconds, api_cost_usd, seed, reference_image

Timestamps are read as ISO-8601 with a time zone (``...Z``) or epoch milliseconds and written as
ISO-8601 UTC with milliseconds and ``Z``; like the JobCompleted event, a trace keeps milliseconds
(finer digits are truncated on read so that a row survives write -> read unchanged).

Production exports are messy, so :func:`load_trace` never lets one bad row cost the others: every
row that breaks a rule is reported by its 1-based line (JSON Lines) or row (Parquet) number with a
reason a person can act on, and every good row is returned. :func:`read_trace` is the strict
streaming reader: it stops at the first bad row.

:func:`generate_trace` synthesises a production-like quarter (8 models, 2 of them API-priced,
3 niches, diurnal + bursty arrivals, queueing, cold starts) so that replay, reports and load
tests have realistic traffic without customer data.
"""

from __future__ import annotations

import json
import logging
import math
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from inference.traffic import NICHE_PROMPTS

log = logging.getLogger(__name__)

PROVIDER_SELF_HOSTED = "self-hosted"
PROVIDER_API = "api"
PROVIDERS = (PROVIDER_SELF_HOSTED, PROVIDER_API)
# The trace says "self-hosted"; the Avro enum cannot hold a dash. The registry's spelling
# ("self_hosted") is accepted on read so a trace exported from our own events loads as is.
AVRO_PROVIDER = {PROVIDER_SELF_HOSTED: "self_hosted", PROVIDER_API: "api"}
_PROVIDER_ALIASES = {"self-hosted": PROVIDER_SELF_HOSTED, "self_hosted": PROVIDER_SELF_HOSTED, "api": PROVIDER_API}

TIMESTAMPS = ("requested_at", "started_at", "completed_at", "delivered_at")
FIELDS = ("job_id", "model", "model_version", "provider", "niche", "prompt", *TIMESTAMPS, "cold_start",
          "cold_start_ms", "gpu_type", "gpu_seconds", "api_cost_usd", "seed", "reference_image")
# May be absent or null: whether gpu_type / api_cost_usd are needed depends on the provider.
_OPTIONAL = frozenset({"gpu_type", "api_cost_usd", "reference_image"})
_NUMBERS = ("cold_start_ms", "gpu_seconds", "api_cost_usd")
_TEXTS = ("job_id", "model", "model_version", "niche", "prompt")
_JSON_SUFFIXES = (".jsonl", ".json")
_PARQUET_SUFFIXES = (".parquet",)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)
_MAX_SEED = 2**63  # Avro long

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


class InvalidTraceRow(ValueError):
    """A TraceRow whose values break the trace's rules; ``problems`` lists every one found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class TraceError:
    """One rejected row: where it is in the file, its job_id if it had a usable one, and why."""

    line: int
    job_id: str | None
    reason: str
    unit: str = "line"  # "line" for JSON Lines, "row" for Parquet / a JSON array

    def __str__(self) -> str:
        return f"{self.unit} {self.line}: {self.reason}"


@dataclass(frozen=True)
class TraceRow:
    """One job of a trace. Construction validates, so a TraceRow in hand is always replayable."""

    job_id: str
    model: str
    model_version: str
    provider: str  # "self-hosted" | "api"
    niche: str
    prompt: str
    requested_at: datetime  # tz-aware UTC, millisecond precision
    started_at: datetime
    completed_at: datetime
    delivered_at: datetime
    cold_start: bool
    cold_start_ms: float  # model load time, spent between started_at and completed_at
    gpu_type: str  # "" for API rows
    gpu_seconds: float  # 0 for API rows
    api_cost_usd: float | None  # required for API rows
    seed: int
    reference_image: str | None = None  # path of the customer's photo, read at replay
    # Where the row came from in its file (load_trace sets it) so later stages can still report
    # by line; not part of the row's identity.
    line: int | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        problems = _row_problems(self)
        if problems:
            raise InvalidTraceRow(problems)

    @property
    def inference_ms(self) -> float:
        """Generation time proper: the started -> completed span minus the model load."""
        return (self.completed_at - self.started_at) / _MS - self.cold_start_ms

    def to_job_completed(self, image: bytes, media_type: str, node_id: str,
                         reference_bytes: bytes | None = None) -> dict[str, Any]:
        """The JobCompleted record (contracts/job_completed.avsc) for this row and a rendered image.

        The trace's own timings, GPU-seconds and API cost are kept, so scores and costs from a
        replay describe the recorded traffic; encode time was not recorded, hence ``None``.
        """
        if self.reference_image and reference_bytes is None:
            # Niches with an input photo are scored against it: silently dropping it would
            # change what the replay measures.
            raise ValueError(f"job {self.job_id}: the trace names reference_image {self.reference_image!r}; "
                             "pass its bytes as reference_bytes")
        return {
            "job_id": self.job_id,
            "model_id": self.model,
            "model_version": self.model_version,
            "provider": AVRO_PROVIDER[self.provider],
            "niche": self.niche,
            "prompt": self.prompt,
            "seed": self.seed,
            "reference_image": reference_bytes,
            "image": image,
            "media_type": media_type,
            "requested_at": self.requested_at,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
            "delivered_at": self.delivered_at,
            "cold_start": self.cold_start,
            "cold_start_ms": float(self.cold_start_ms),
            "inference_ms": self.inference_ms,
            "encode_ms": None,
            "gpu_type": self.gpu_type,
            "gpu_seconds": float(self.gpu_seconds),
            "api_cost_usd": None if self.api_cost_usd is None else float(self.api_cost_usd),
            "node_id": node_id,
        }

    def to_record(self) -> dict[str, Any]:
        """The row as written to a trace file (ISO-8601 UTC timestamps with ms and 'Z')."""
        record = {name: getattr(self, name) for name in FIELDS}
        for name in TIMESTAMPS:
            record[name] = format_time(record[name])
        return record


def format_time(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _row_problems(row: TraceRow) -> list[str]:
    """Every rule a row breaks (values, not parsing): shared by construction and load_trace."""
    problems: list[str] = []
    for name in _TEXTS:
        value = getattr(row, name)
        if not isinstance(value, str):
            problems.append(f"{name} must be a string, got {type(value).__name__}")
        elif not value.strip() and name != "prompt":
            problems.append(f"{name} is empty")
    if row.provider not in PROVIDERS:
        problems.append(f"provider {row.provider!r} is not one of {', '.join(PROVIDERS)}")
    bad_stamps = [name for name in TIMESTAMPS if not isinstance(ts := getattr(row, name), datetime)
                  or ts.tzinfo is None or ts.utcoffset() != timedelta(0)]
    for name in bad_stamps:
        problems.append(f"{name} must be a timezone-aware UTC datetime, got {getattr(row, name)!r}")
    if not bad_stamps:
        for earlier, later in zip(TIMESTAMPS, TIMESTAMPS[1:]):
            gap = (getattr(row, later) - getattr(row, earlier)) / _MS
            if gap < 0:
                problems.append(f"{later} is before {earlier} (by {-gap:.0f} ms)")
    if not isinstance(row.cold_start, bool):
        problems.append(f"cold_start must be true or false, got {row.cold_start!r}")
    for name in _NUMBERS:
        value = getattr(row, name)
        if value is None and name == "api_cost_usd":
            continue
        if not _is_number(value):
            problems.append(f"{name} must be a number, got {type(value).__name__}")
        elif not math.isfinite(value):
            problems.append(f"{name} is {value} (not a finite number)")
        elif value < 0:
            problems.append(f"{name} is negative ({value})")
    if not isinstance(row.seed, int) or isinstance(row.seed, bool):
        problems.append(f"seed must be an integer, got {type(row.seed).__name__}")
    elif not 0 <= row.seed < _MAX_SEED:
        problems.append(f"seed {row.seed} is outside 0 .. 2**63-1")
    if not isinstance(row.gpu_type, str):
        problems.append(f"gpu_type must be a string, got {type(row.gpu_type).__name__}")
    if row.reference_image is not None and not isinstance(row.reference_image, str):
        problems.append(f"reference_image must be a path string or null, got {type(row.reference_image).__name__}")
    if problems:
        return problems  # the cross-field rules below need well-typed, ordered, finite values

    if not row.cold_start and row.cold_start_ms > 0:
        problems.append(f"cold_start is false but cold_start_ms is {row.cold_start_ms:g}")
    span = (row.completed_at - row.started_at) / _MS
    if row.cold_start_ms > span:
        problems.append(f"cold_start_ms ({row.cold_start_ms:g}) is longer than started_at -> completed_at "
                        f"({span:.0f} ms); the model load happens inside that span")
    if row.provider == PROVIDER_API:
        if row.api_cost_usd is None:
            problems.append("api row has no api_cost_usd (API jobs are priced per call)")
        if row.gpu_seconds != 0:
            problems.append(f"api row has gpu_seconds {row.gpu_seconds:g}; API jobs hold no GPU (must be 0)")
    elif row.provider == PROVIDER_SELF_HOSTED:
        if not row.gpu_type.strip():
            problems.append("self-hosted row has no gpu_type (its GPU-seconds are priced by GPU type)")
        if row.api_cost_usd is not None:
            problems.append("self-hosted row has api_cost_usd; self-hosted jobs are priced by gpu_seconds "
                            "(leave api_cost_usd null)")
    return problems


# --- parsing one raw row -------------------------------------------------------------------

def _parse_time(name: str, value: Any) -> tuple[datetime | None, str | None]:
    if _is_number(value):
        if isinstance(value, float) and not value.is_integer():
            return None, f"{name} {value!r} is not a whole number of epoch milliseconds"
        try:
            return _EPOCH + timedelta(milliseconds=int(value)), None
        except OverflowError:
            return None, f"{name} {value!r} is out of range for epoch milliseconds"
    if isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value.strip())
        except ValueError:
            return None, f"{name} {value!r} is not an ISO-8601 time or epoch milliseconds"
    elif isinstance(value, datetime):  # a Parquet timestamp column
        ts = value
    else:
        return None, f"{name} must be an ISO-8601 string or epoch milliseconds, got {type(value).__name__}"
    if ts.tzinfo is None:
        # A time without a zone is a guess waiting to be wrong by hours; refuse it.
        return None, f"{name} {str(value)!r} has no time zone (write UTC, e.g. '2026-01-01T09:00:00.000Z')"
    ts = ts.astimezone(timezone.utc)
    return ts.replace(microsecond=ts.microsecond // 1000 * 1000), None


def _parse_row(raw: Mapping[str, Any]) -> TraceRow:
    """A TraceRow from one decoded record, or InvalidTraceRow listing everything wrong with it."""
    missing = [name for name in FIELDS if name not in _OPTIONAL and raw.get(name) is None]
    if missing:
        absent = [n for n in missing if n not in raw]
        null = [n for n in missing if n in raw]
        problems = []
        if absent:
            problems.append(f"missing field{'s' if len(absent) > 1 else ''}: {', '.join(absent)}")
        if null:
            problems.append(f"null field{'s' if len(null) > 1 else ''}: {', '.join(null)}")
        raise InvalidTraceRow(problems)
    problems: list[str] = []
    values: dict[str, Any] = {name: raw.get(name) for name in FIELDS}
    for name in TIMESTAMPS:
        values[name], problem = _parse_time(name, raw[name])
        if problem:
            problems.append(problem)
    provider = raw["provider"]
    values["provider"] = _PROVIDER_ALIASES.get(provider) if isinstance(provider, str) else None
    if values["provider"] is None:
        problems.append(f"provider {provider!r} is not one of {', '.join(PROVIDERS)}")
    seed = raw["seed"]
    if isinstance(seed, float) and seed.is_integer():
        values["seed"] = int(seed)
    values["gpu_type"] = raw.get("gpu_type") or ""
    values["reference_image"] = raw.get("reference_image") or None
    for name in _NUMBERS:  # a whole number in JSON is still a number of ms / s / USD
        if _is_number(values[name]):
            values[name] = float(values[name])
    if problems:
        raise InvalidTraceRow(problems)
    return TraceRow(**values)


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
            row = _parse_row(record)
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


# --- generating a production-like quarter ----------------------------------------------------

@dataclass(frozen=True)
class TraceModel:
    """How one model behaves in generated traffic."""

    model: str
    version: str
    provider: str
    gpu_type: str  # "" for API models; self-hosted ones must be priced in pricing.toml
    share: float  # fraction of all jobs
    niche_mix: tuple[float, float, float]  # headshot, product, portrait
    inference_median_s: float  # lognormal median of generation time
    inference_sigma: float  # lognormal sigma (log-space)
    api_cost_usd: float | None = None
    slow_call_prob: float = 0.0  # API retries / provider hiccups: the heavier tail
    cold_start_median_s: float = 10.0
    # Idle time at which a cold start becomes likely (1 - 1/e of COLD_AFTER_IDLE_MAX): the
    # autoscaler drains idle replicas, popular models keep one warm for longer.
    idle_scale_s: float = 3600.0


NICHES = ("headshot", "product", "portrait")
TRACE_MODELS: tuple[TraceModel, ...] = (
    TraceModel("flux-dev", "2026.1", PROVIDER_SELF_HOSTED, "H100-80GB", 0.16, (0.25, 0.45, 0.30), 5.0, 0.10,
               cold_start_median_s=14.0, idle_scale_s=4 * 3600.0),
    TraceModel("flux-schnell", "2026.1", PROVIDER_SELF_HOSTED, "A100-80GB", 0.18, (0.30, 0.45, 0.25), 1.0, 0.20,
               cold_start_median_s=11.0, idle_scale_s=4 * 3600.0),
    TraceModel("sdxl-lightning", "2025.12", PROVIDER_SELF_HOSTED, "L4", 0.14, (0.35, 0.40, 0.25), 0.9, 0.20,
               cold_start_median_s=8.0, idle_scale_s=2 * 3600.0),
    TraceModel("sdxl-turbo", "2025.11", PROVIDER_SELF_HOSTED, "L4", 0.10, (0.20, 0.60, 0.20), 0.7, 0.20,
               cold_start_median_s=7.0, idle_scale_s=2 * 3600.0),
    TraceModel("sd15-headshot-lora", "2026.2", PROVIDER_SELF_HOSTED, "A100-80GB", 0.12, (0.92, 0.0, 0.08), 1.8, 0.15,
               cold_start_median_s=6.0),
    TraceModel("realvis-xl", "5.0", PROVIDER_SELF_HOSTED, "A100-80GB", 0.08, (0.15, 0.25, 0.60), 3.0, 0.15,
               cold_start_median_s=9.0),
    TraceModel("proprietary-a", "2026-01", PROVIDER_API, "", 0.12, (0.40, 0.30, 0.30), 4.8, 0.30,
               api_cost_usd=0.040, slow_call_prob=0.03),
    TraceModel("proprietary-b", "v3", PROVIDER_API, "", 0.10, (0.30, 0.40, 0.30), 4.0, 0.35,
               api_cost_usd=0.025, slow_call_prob=0.03),
)
DEFAULT_START = datetime(2026, 1, 1, tzinfo=timezone.utc)

# Arrivals: rate(t) = diurnal(hour UTC) x weekly x bursts, over 1-minute bins.
PEAK_HOUR_UTC = 15.0  # US morning overlapping the EU afternoon; trough 12 h later
DIURNAL_AMPLITUDE = 0.7  # peak / trough = 1.7 / 0.3
WEEKEND_FACTOR = 0.75
BURSTS_PER_DAY = 1.0  # a customer batch, a campaign going live
BURST_MINUTES = (3.0, 20.0)
BURST_MULTIPLIER = (5.0, 10.0)
# Queueing: utilisation at the ordinary daily peak, and the ceiling bursts saturate towards.
PEAK_UTILISATION = 0.4
MAX_UTILISATION = 0.9
DISPATCH_MEDIAN_MS = 30.0  # scheduler / network hop before a worker picks the job up
COLD_AFTER_IDLE_MAX = 0.9  # even after a long idle a warm replica is sometimes still there
COLD_BASE = 0.002  # node restarts, preemptions
DELIVERY_MEDIAN_MS = 40.0  # encode + upload + webhook, a few ms to a few hundred
_BIN_MS = 60_000


def _arrivals(rng: np.random.Generator, n: int, start_ms: int, total_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """n arrival times (epoch ms, sorted) and the load at each, relative to the ordinary daily peak.

    Given the count, a non-homogeneous Poisson process's arrival times are i.i.d. with density
    proportional to its rate, so sampling n of them from the rate curve is exact.
    """
    edges = np.arange(0, total_ms, _BIN_MS, dtype=np.int64)
    lengths = np.minimum(_BIN_MS, total_ms - edges)
    mid = (start_ms + edges + lengths / 2).astype(np.float64)
    hour = (mid / 3_600_000.0) % 24.0
    weekday = (np.floor(mid / 86_400_000.0).astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    base = (1.0 + DIURNAL_AMPLITUDE * np.cos(2 * np.pi * (hour - PEAK_HOUR_UTC) / 24.0)) \
        * np.where(weekday >= 5, WEEKEND_FACTOR, 1.0)
    burst = np.ones(len(edges))
    for _ in range(rng.poisson(BURSTS_PER_DAY * total_ms / 86_400_000.0)):
        first = int(rng.integers(0, len(edges)))
        width = max(1, int(round(rng.uniform(*BURST_MINUTES))))
        burst[first:first + width] = np.maximum(burst[first:first + width], rng.uniform(*BURST_MULTIPLIER))
    rate = base * burst
    cdf = np.cumsum(rate * lengths)
    bins = np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right"), len(edges) - 1)
    times = start_ms + edges[bins] + np.floor(rng.random(n) * lengths[bins]).astype(np.int64)
    order = np.argsort(times, kind="stable")
    return times[order], (rate[bins] / (1.0 + DIURNAL_AMPLITUDE))[order]


def _lognormal_ms(median_s: np.ndarray | float, sigma: np.ndarray | float, z: np.ndarray) -> np.ndarray:
    return np.maximum(1, np.round(np.asarray(median_s) * 1000.0 * np.exp(np.asarray(sigma) * z))).astype(np.int64)


def generate_trace(n: int, *, seed: int = 0, start: datetime | None = None, days: float = 91.0) -> list[TraceRow]:
    """A production-like trace of ``n`` jobs over ``days`` from ``start`` (default 2026-01-01Z,
    a quarter), sorted by requested_at; the same seed gives the same rows.

    Shape: 8 models (``TRACE_MODELS``; 2 API-priced) with their own niche mixes and lognormal
    latencies; arrivals follow a diurnal + weekly cycle with bursts of 5-10x lasting minutes;
    queue waits grow with load (utilisation rho, wait ~ service x rho / (1 - rho)); a self-hosted
    model that sat idle for hours is likely to start cold (5-20 s load, inside started ->
    completed, billed as GPU-seconds); API models show no cold start, only their heavier tail.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not days > 0:
        raise ValueError(f"days must be > 0, got {days}")
    start = DEFAULT_START if start is None else start
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware (UTC)")
    if n == 0:
        return []
    rng = np.random.default_rng([seed & 0xFFFF_FFFF_FFFF_FFFF, 0x7ACE])
    start_ms = (start.astimezone(timezone.utc) - _EPOCH) // _MS
    total_ms = int(days * 86_400_000)
    times, load = _arrivals(rng, n, start_ms, total_ms)

    models = TRACE_MODELS
    shares = np.array([m.share for m in models])
    model_idx = rng.choice(len(models), size=n, p=shares / shares.sum())
    niche_cdf = np.cumsum(np.array([m.niche_mix for m in models]), axis=1)
    niche_cdf /= niche_cdf[:, -1:]
    niche_idx = np.minimum((rng.random(n)[:, None] >= niche_cdf[model_idx]).sum(axis=1), len(NICHES) - 1)
    prompt_pick = rng.integers(0, 1 << 30, size=n)
    image_seeds = rng.integers(0, 2**31, size=n)

    median_s = np.array([m.inference_median_s for m in models])[model_idx]
    sigma = np.array([m.inference_sigma for m in models])[model_idx]
    infer_ms = _lognormal_ms(median_s, sigma, rng.standard_normal(n))
    slow = rng.random(n) < np.array([m.slow_call_prob for m in models])[model_idx]
    infer_ms = np.where(slow, np.round(infer_ms * rng.uniform(2.0, 5.0, size=n)).astype(np.int64), infer_ms)

    rho = np.minimum(MAX_UTILISATION, PEAK_UTILISATION * load)
    queue_ms = _lognormal_ms(DISPATCH_MEDIAN_MS / 1000.0, 0.6, rng.standard_normal(n)) \
        + np.round(median_s * 1000.0 * rho / (1.0 - rho) * rng.exponential(1.0, size=n)).astype(np.int64)
    cold_draw = rng.random(n)
    cold_ms_all = _lognormal_ms(np.array([m.cold_start_median_s for m in models])[model_idx], 0.35,
                                rng.standard_normal(n))
    delivery_ms = _lognormal_ms(DELIVERY_MEDIAN_MS / 1000.0, 0.9, rng.standard_normal(n))

    last_request: dict[int, int] = {}
    rows: list[TraceRow] = []
    for i in range(n):
        m = models[int(model_idx[i])]
        t = int(times[i])
        cold_ms = 0
        if m.provider == PROVIDER_SELF_HOSTED:
            gap_s = (t - last_request[k]) / 1000.0 if (k := int(model_idx[i])) in last_request else math.inf
            # The longer a model sat idle, the likelier its replicas were drained (scale to
            # zero); a burst that pushes utilisation high makes the autoscaler add cold ones.
            p_cold = (COLD_BASE + COLD_AFTER_IDLE_MAX * -math.expm1(-gap_s / m.idle_scale_s)
                      + 0.1 * max(0.0, float(rho[i]) - 0.6) / (MAX_UTILISATION - 0.6))
            if cold_draw[i] < p_cold:
                cold_ms = int(cold_ms_all[i])
            last_request[k] = t
        requested = t
        started = requested + int(queue_ms[i])
        completed = started + cold_ms + int(infer_ms[i])
        delivered = completed + int(delivery_ms[i])
        niche = NICHES[int(niche_idx[i])]
        prompts = NICHE_PROMPTS[niche]
        rows.append(TraceRow(
            job_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"sentinel/trace/{seed}/{i}")),
            model=m.model,
            model_version=m.version,
            provider=m.provider,
            niche=niche,
            prompt=prompts[int(prompt_pick[i]) % len(prompts)],
            requested_at=_EPOCH + timedelta(milliseconds=requested),
            started_at=_EPOCH + timedelta(milliseconds=started),
            completed_at=_EPOCH + timedelta(milliseconds=completed),
            delivered_at=_EPOCH + timedelta(milliseconds=delivered),
            cold_start=cold_ms > 0,
            cold_start_ms=float(cold_ms),
            gpu_type=m.gpu_type,
            gpu_seconds=(completed - started) / 1000.0 if m.provider == PROVIDER_SELF_HOSTED else 0.0,
            api_cost_usd=m.api_cost_usd,
            seed=int(image_seeds[i]),
            reference_image=None,
        ))
    log.debug("generated %d trace rows (seed %d) from %s over %.1f days", n, seed, format_time(start), days)
    return rows
