"""A trace row: it validates on construction and becomes a valid JobCompleted event."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import datetime, timedelta

import pytest
from conftest import image_bytes

from contracts.codec import SCHEMA_DIR, AvroCodec
from inference.trace_files import TraceError
from inference.trace_generator import generate_trace
from inference.trace_row import InvalidTraceRow, TraceRow
from sentinel.validation import check_job


@pytest.fixture(scope="module")
def trace() -> list[TraceRow]:
    return generate_trace(2000, seed=1)


def _ms(a: datetime, b: datetime) -> float:
    return (b - a) / timedelta(milliseconds=1)


def test_trace_row_validates_on_construction(trace):
    row = trace[0]
    with pytest.raises(InvalidTraceRow, match="delivered_at is before completed_at"):
        dataclasses.replace(row, delivered_at=row.completed_at - timedelta(seconds=1))
    with pytest.raises(InvalidTraceRow, match="timezone-aware"):
        dataclasses.replace(row, requested_at=row.requested_at.replace(tzinfo=None))
    with pytest.raises(InvalidTraceRow, match="api row has no api_cost_usd"):
        dataclasses.replace(row, provider="api", gpu_type="", gpu_seconds=0.0, api_cost_usd=None)
    assert isinstance(TraceError(3, None, "x"), TraceError)


def test_to_job_completed_encodes_and_validates(trace):
    codec = AvroCodec("JobCompleted")
    names = [f["name"] for f in json.loads((SCHEMA_DIR / "job_completed.avsc").read_text())["fields"]]
    cold = next(r for r in trace if r.cold_start)
    api = next(r for r in trace if r.provider == "api")
    with_ref = dataclasses.replace(trace[0], reference_image="refs/customer-1.png")
    for row, ref in ((cold, None), (api, None), (with_ref, image_bytes(99, "PNG"))):
        event = row.to_job_completed(image_bytes(1), "image/webp", "replay-1", ref)
        assert list(event) == names
        assert codec.decode(codec.encode(event)) == event
        check_job(event, max_image_bytes=900_000)
        assert event["model_id"] == row.model
        assert event["provider"] == ("api" if row.provider == "api" else "self_hosted")
        assert event["encode_ms"] is None and event["reference_image"] == ref
        span = _ms(row.started_at, row.completed_at)
        assert event["inference_ms"] == span - row.cold_start_ms >= 0
    assert cold.to_job_completed(b"x", "image/png", "n")["cold_start_ms"] > 0
    assert api.to_job_completed(b"x", "image/png", "n")["gpu_seconds"] == 0.0
    with pytest.raises(ValueError, match="reference_bytes"):
        with_ref.to_job_completed(image_bytes(1), "image/webp", "replay-1")
    assert not math.isnan(api.to_job_completed(b"x", "image/png", "n")["api_cost_usd"])
