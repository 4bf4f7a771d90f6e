"""One job of a production-traffic trace: its fields, its rules, and the event it replays as.

A trace row is:

    job_id, model, model_version, provider ("self-hosted" | "api"), niche, prompt,
    requested_at, started_at, completed_at, delivered_at, cold_start, cold_start_ms,
    gpu_type, gpu_seconds, api_cost_usd, seed, reference_image

Timestamps are read as ISO-8601 with a time zone (``...Z``) or epoch milliseconds and written as
ISO-8601 UTC with milliseconds and ``Z``; like the JobCompleted event, a trace keeps milliseconds
(finer digits are truncated on read so that a row survives write -> read unchanged). A
``TraceRow`` validates on construction; :func:`parse_row` turns one decoded record into one,
listing every problem it finds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from inference.attempts import UNGUARDED

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
# May be absent or null: whether gpu_type / api_cost_usd are needed depends on the provider
# (gpu_seconds too, for API rows: see parse_row).
_OPTIONAL = frozenset({"gpu_type", "api_cost_usd", "reference_image"})
_NUMBERS = ("cold_start_ms", "gpu_seconds", "api_cost_usd")
_TEXTS = ("job_id", "model", "model_version", "niche", "prompt")
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
ONE_MS = timedelta(milliseconds=1)
_MAX_SEED = 2**63  # Avro long


class InvalidTraceRow(ValueError):
    """A TraceRow whose values break the trace's rules; ``problems`` lists every one found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


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
    gpu_seconds: float  # 0 for API rows (null or absent in the file reads as 0)
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
        return (self.completed_at - self.started_at) / ONE_MS - self.cold_start_ms

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
            "image_ref": None,
            "reference_image_ref": None,
            **UNGUARDED,
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
            gap = (getattr(row, later) - getattr(row, earlier)) / ONE_MS
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
    span = (row.completed_at - row.started_at) / ONE_MS
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

def parse_time(name: str, value: Any) -> tuple[datetime | None, str | None]:
    """A UTC time at millisecond precision from ISO-8601 with a zone, epoch milliseconds or a
    datetime, or (None, why not) naming ``name``: one rule for trace rows and rating imports."""
    if _is_number(value):
        if isinstance(value, float) and not value.is_integer():
            return None, f"{name} {value!r} is not a whole number of epoch milliseconds"
        try:
            return EPOCH + timedelta(milliseconds=int(value)), None
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


def _is_api(raw: Mapping[str, Any]) -> bool:
    provider = raw.get("provider")
    return isinstance(provider, str) and _PROVIDER_ALIASES.get(provider) == PROVIDER_API


def parse_row(raw: Mapping[str, Any]) -> TraceRow:
    """A TraceRow from one decoded record, or InvalidTraceRow listing everything wrong with it.

    An API row may leave ``gpu_seconds`` null or out: an API job holds no GPU, so it is 0 (the
    JobCompleted event requires the field). A self-hosted row is priced by it and must have it.
    """
    optional = _OPTIONAL | {"gpu_seconds"} if _is_api(raw) else _OPTIONAL
    missing = [name for name in FIELDS if name not in optional and raw.get(name) is None]
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
        values[name], problem = parse_time(name, raw[name])
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
    if values["gpu_seconds"] is None:  # an API row (a self-hosted one stopped at `missing`)
        values["gpu_seconds"] = 0.0
    values["reference_image"] = raw.get("reference_image") or None
    for name in _NUMBERS:  # a whole number in JSON is still a number of ms / s / USD
        if _is_number(values[name]):
            values[name] = float(values[name])
    if problems:
        raise InvalidTraceRow(problems)
    return TraceRow(**values)
