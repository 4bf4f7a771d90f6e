"""PairwiseRating rules that Avro's types cannot state (one definition for the import, the
rating page and the worker's store)."""

from __future__ import annotations

from typing import Any, Mapping

from contracts.errors import InvalidEvent

WINNERS = ("a", "b", "tie")
SIMULATED_PREFIX = "sim-"  # rater ids of simulated raters (the report says when all are)
DEFAULT_RATER = "anonymous"
MAX_ID_LEN = 200


def check_rating(record: Mapping[str, Any]) -> None:
    """What Avro's types cannot say about a decoded PairwiseRating; raises InvalidEvent."""
    for name in ("rating_id", "job_a", "job_b", "rater"):
        value = record.get(name)
        if not value or not str(value).strip():
            raise InvalidEvent("invalid_rating", f"empty {name}")
        if len(value) > MAX_ID_LEN:
            raise InvalidEvent("invalid_rating", f"{name} longer than {MAX_ID_LEN} characters")
    if record["job_a"] == record["job_b"]:
        raise InvalidEvent("invalid_rating", f"job_a and job_b are the same job ({record['job_a']!r})")
    if record.get("winner") not in WINNERS:
        raise InvalidEvent("invalid_rating", f"winner {record.get('winner')!r} is not one of a, b, tie")
