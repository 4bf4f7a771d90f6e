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
from inference.trace_row import InvalidTraceRow, TraceRow, parse_row
from sentinel.cost import Pricing
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


def test_api_rows_without_gpu_seconds_replay_at_the_api_price(trace):
    """Production exports leave gpu_seconds null or out for API jobs, api_cost_usd for self-hosted ones."""
    codec = AvroCodec("JobCompleted")
    pricing = Pricing(platform_fee_usd_per_image=0.002, orchestration_overhead=0.15, gpu_usd_per_hour={"L4": 0.80})
    api = next(r for r in trace if r.provider == "api").to_record()
    null_gpu = {**api, "gpu_seconds": None, "gpu_type": None}
    no_gpu = {k: v for k, v in api.items() if k not in ("gpu_seconds", "gpu_type")}
    for raw in (null_gpu, no_gpu, {**no_gpu, "provider": "api"}):
        row = parse_row(raw)
        assert row.gpu_seconds == 0.0 and row.api_cost_usd == api["api_cost_usd"]
        event = codec.decode(codec.encode(row.to_job_completed(image_bytes(1), "image/webp", "replay-1")))
        assert event["gpu_seconds"] == 0.0 and event["provider"] == "api"
        cost = pricing.job_cost(provider=event["provider"], gpu_type=event["gpu_type"],
                                gpu_seconds=event["gpu_seconds"], api_cost_usd=event["api_cost_usd"])
        assert cost == pytest.approx(api["api_cost_usd"] + 0.002, rel=1e-12)

    hosted = {**next(r for r in trace if r.provider == "self-hosted").to_record(), "gpu_type": "L4"}
    for raw in ({**hosted, "api_cost_usd": None}, {k: v for k, v in hosted.items() if k != "api_cost_usd"}):
        assert parse_row(raw).api_cost_usd is None
    # a self-hosted job is priced by its GPU-seconds: without them it cannot be replayed
    with pytest.raises(InvalidTraceRow, match="null field: gpu_seconds"):
        parse_row({**hosted, "gpu_seconds": None})
    with pytest.raises(InvalidTraceRow, match="missing field: gpu_seconds"):
        parse_row({k: v for k, v in hosted.items() if k != "gpu_seconds"})
    with pytest.raises(InvalidTraceRow, match="api row has gpu_seconds 3"):
        parse_row({**api, "gpu_seconds": 3.0})
