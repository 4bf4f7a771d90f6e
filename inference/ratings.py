"""Import of human pairwise ratings: a JSON Lines file -> validated PairwiseRating records ->
``ratings.pairwise`` (key = rating id). Bad lines are reported by line number with a reason."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from contracts.codec import AvroCodec
from contracts.ratings import MAX_ID_LEN, WINNERS
from contracts.topics import RATINGS
from inference.trace_row import parse_time

log = logging.getLogger(__name__)

# JSON Lines fields of `sentinel ratings import`; `time` becomes the record's rated_at.
IMPORT_FIELDS = ("rating_id", "job_a", "job_b", "winner", "rater", "time")


@dataclass(frozen=True)
class RatingError:
    """One rejected line of a ratings file."""

    line: int
    rating_id: str | None
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


def parse_rating(raw: Any) -> dict[str, Any]:
    """A PairwiseRating record from one import row (a JSON object with IMPORT_FIELDS), or
    ValueError listing every problem found ("; "-joined)."""
    if not isinstance(raw, dict):
        raise ValueError(f"a rating must be a JSON object, got {type(raw).__name__}")
    missing = [name for name in IMPORT_FIELDS if raw.get(name) is None]
    if missing:
        absent = [n for n in missing if n not in raw]
        null = [n for n in missing if n in raw]
        problems = []
        if absent:
            problems.append(f"missing field{'s' if len(absent) > 1 else ''}: {', '.join(absent)}")
        if null:
            problems.append(f"null field{'s' if len(null) > 1 else ''}: {', '.join(null)}")
        raise ValueError("; ".join(problems))
    problems = []
    for name in ("rating_id", "job_a", "job_b", "rater"):
        value = raw[name]
        if not isinstance(value, str):
            problems.append(f"{name} must be a string, got {type(value).__name__}")
        elif not value.strip():
            problems.append(f"{name} is empty")
        elif len(value) > MAX_ID_LEN:
            problems.append(f"{name} is longer than {MAX_ID_LEN} characters")
    if not problems and raw["job_a"] == raw["job_b"]:
        problems.append(f"job_a and job_b are the same job ({raw['job_a']!r})")
    if raw["winner"] not in WINNERS:
        problems.append(f"winner {raw['winner']!r} is not one of a, b, tie")
    rated_at, problem = parse_time("time", raw["time"])
    if problem:
        problems.append(problem)
    if problems:
        raise ValueError("; ".join(problems))
    return {"rating_id": raw["rating_id"], "job_a": raw["job_a"], "job_b": raw["job_b"], "winner": raw["winner"],
            "rater": raw["rater"], "rated_at": rated_at}


def parse_ratings(lines: Iterable[str | bytes]) -> tuple[list[dict[str, Any]], list[RatingError]]:
    """Records of every good line and one RatingError (1-based line number) per bad line.
    Blank lines are skipped (they still count as lines); a rating_id seen before is an error."""
    records: list[dict[str, Any]] = []
    errors: list[RatingError] = []
    seen: dict[str, int] = {}
    unknown: set[str] = set()
    for line_no, line in enumerate(lines, start=1):
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError:
                errors.append(RatingError(line_no, None, "not UTF-8 text"))
                continue
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(RatingError(line_no, None, f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        rating_id = raw.get("rating_id") if isinstance(raw, dict) and isinstance(raw.get("rating_id"), str) else None
        try:
            record = parse_rating(raw)
        except ValueError as exc:
            errors.append(RatingError(line_no, rating_id, str(exc)))
            continue
        unknown.update(set(raw) - set(IMPORT_FIELDS))
        if record["rating_id"] in seen:
            errors.append(RatingError(line_no, record["rating_id"], f"duplicate rating_id {record['rating_id']!r} "
                                                                   f"(first seen on line {seen[record['rating_id']]})"))
            continue
        seen[record["rating_id"]] = line_no
        records.append(record)
    if unknown:
        log.warning("ignored unknown rating field(s) %s", sorted(unknown))
    return records, errors


def read_ratings_file(path: Path) -> tuple[list[dict[str, Any]], list[RatingError]]:
    """:func:`parse_ratings` of a JSON Lines file."""
    with Path(path).open("rb") as fh:
        return parse_ratings(fh)


# -- publishing -----------------------------------------------------------------------------

async def publish_ratings(bootstrap: str, records: Sequence[Mapping[str, Any]], *, topic: str = RATINGS) -> int:
    """Publish PairwiseRating records (key = rating_id); returns how many were acknowledged."""
    from aiokafka import AIOKafkaProducer

    codec = AvroCodec("PairwiseRating")
    payloads = [(r["rating_id"].encode(), codec.encode(dict(r))) for r in records]  # encode all before sending
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in payloads]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(payloads)


@dataclass
class ImportResult:
    published: int
    errors: list[RatingError] = field(default_factory=list)


def import_ratings(bootstrap: str, path: Path, *, skip_invalid: bool = False) -> ImportResult:
    """Validate a ratings JSON Lines file and publish it to ratings.pairwise.

    All or nothing by default: if any line is invalid nothing is published (``published == 0``,
    the errors say why). ``skip_invalid=True`` publishes the good lines and reports the rest.
    """
    records, errors = read_ratings_file(path)
    if errors and not skip_invalid:
        return ImportResult(0, errors)
    published = asyncio.run(publish_ratings(bootstrap, records)) if records else 0
    return ImportResult(published, errors)
