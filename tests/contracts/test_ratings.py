"""Rating rules (contracts/ratings.py) on decoded PairwiseRating records, and the Avro enum."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from contracts.codec import AvroCodec
from contracts.errors import InvalidEvent
from contracts.ratings import check_rating

UTC = timezone.utc
GOOD = {"rating_id": "r-1", "job_a": "job-1", "job_b": "job-2", "winner": "a", "rater": "alice",
        "time": "2026-01-05T09:00:00.123Z"}
UNREACHABLE = "127.0.0.1:1"  # publishing would fail loudly: these tests prove nothing is sent


def test_check_rating_on_decoded_records() -> None:
    ok = {"rating_id": "r", "job_a": "x", "job_b": "y", "winner": "tie", "rater": "bob",
          "rated_at": datetime(2026, 1, 1, tzinfo=UTC)}
    check_rating(ok)
    for bad, detail in [(dict(ok, job_b="x"), "same job"), (dict(ok, rater=""), "empty rater"),
                        (dict(ok, rating_id=" "), "empty rating_id")]:
        with pytest.raises(InvalidEvent, match=detail) as info:
            check_rating(bad)
        assert info.value.reason == "invalid_rating"


def test_avro_winner_is_an_enum() -> None:
    codec = AvroCodec("PairwiseRating")
    record = {"rating_id": "r", "job_a": "x", "job_b": "y", "winner": "left", "rater": "bob",
              "rated_at": datetime(2026, 1, 1, tzinfo=UTC)}
    with pytest.raises(Exception):
        codec.encode(record)
