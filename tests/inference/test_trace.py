"""Production-traffic traces: the generator's shape, file round trips, the validating reader,
and the JobCompleted events a trace row becomes."""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import image_bytes

from inference.trace import (
    FIELDS,
    TRACE_MODELS,
    InvalidTraceRow,
    TraceError,
    TraceFormatError,
    TraceRow,
    format_time,
    generate_trace,
    load_trace,
    read_trace,
    write_trace,
)
from inference.traffic import NICHE_PROMPTS
from contracts.codec import SCHEMA_DIR, AvroCodec
from sentinel.validation import check_job

ROOT = Path(__file__).resolve().parents[2]
STAMPS = ("requested_at", "started_at", "completed_at", "delivered_at")


@pytest.fixture(scope="module")
def trace() -> list[TraceRow]:
    return generate_trace(2000, seed=1)


def _ms(a: datetime, b: datetime) -> float:
    return (b - a) / timedelta(milliseconds=1)


# --- generator -----------------------------------------------------------------------------

def test_generate_is_deterministic_and_seeded(trace):
    assert generate_trace(2000, seed=1) == trace
    other = generate_trace(2000, seed=2)
    assert other != trace
    assert {r.job_id for r in other}.isdisjoint(r.job_id for r in trace)
    assert len({r.job_id for r in trace}) == len(trace)


def test_generate_shape(trace):
    assert len(trace) == 2000
    requested = [r.requested_at for r in trace]
    assert requested == sorted(requested)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert start <= requested[0] and requested[-1] < start + timedelta(days=91)
    models = Counter(r.model for r in trace)
    assert len(models) == 8
    assert {"flux-dev", "flux-schnell", "sdxl-lightning", "sdxl-turbo"} <= set(models)
    assert {r.model for r in trace if r.provider == "api"} == {"proprietary-a", "proprietary-b"}
    assert {r.niche for r in trace} == {"headshot", "product", "portrait"}
    for r in trace:
        assert r.prompt in NICHE_PROMPTS[r.niche]
        assert r.requested_at <= r.started_at <= r.completed_at <= r.delivered_at
        assert r.requested_at.tzinfo is not None and r.requested_at.utcoffset() == timedelta(0)
        assert r.reference_image is None and 0 <= r.seed < 2**31
    # per-model niche mix: the headshot LoRA is (almost) only headshots, realvis mostly portraits
    lora = Counter(r.niche for r in trace if r.model == "sd15-headshot-lora")
    assert lora["headshot"] > 0.8 * sum(lora.values()) and lora["product"] == 0


def test_generate_costs_are_priceable(trace):
    prices = tomllib.loads((ROOT / "pricing.toml").read_text())["gpu_usd_per_hour"]
    self_hosted = [r for r in trace if r.provider == "self-hosted"]
    assert {r.gpu_type for r in self_hosted} <= set(prices)
    assert {m.gpu_type for m in TRACE_MODELS if m.provider == "self-hosted"} <= set(prices)
    for r in self_hosted:
        assert r.api_cost_usd is None
        assert r.gpu_seconds == pytest.approx(_ms(r.started_at, r.completed_at) / 1000)
    api = [r for r in trace if r.provider == "api"]
    assert api and all(r.gpu_seconds == 0 and r.api_cost_usd is not None and r.api_cost_usd > 0 for r in api)
    assert {r.api_cost_usd for r in api} == {0.040, 0.025}
    assert not any(r.cold_start for r in api)


def test_generate_diurnal_cycle(trace):
    hours = Counter(r.requested_at.hour for r in trace)
    peak = sum(hours[h] for h in range(13, 18))  # around the 15:00 UTC peak
    trough = sum(hours[h] for h in (1, 2, 3, 4, 5))  # around the 03:00 UTC trough
    assert peak > 3 * trough, (peak, trough)


def test_generate_latency_distributions(trace):
    infer = defaultdict(list)
    for r in trace:
        infer[r.model].append(r.inference_ms)
    median = {m: float(np.median(v)) for m, v in infer.items()}
    for fast in ("flux-schnell", "sdxl-lightning", "sdxl-turbo"):
        assert 500 <= median[fast] <= 1500, (fast, median[fast])
    assert 4000 <= median["flux-dev"] <= 6000
    for api in ("proprietary-a", "proprietary-b"):
        assert 3000 <= median[api] <= 8000
        assert max(infer[api]) > 2.5 * median[api]  # the heavier tail
    delivery = [_ms(r.completed_at, r.delivered_at) for r in trace]
    assert min(delivery) >= 1 and 10 <= np.median(delivery) <= 200 and max(delivery) < 5000


def test_generate_bursts_raise_rate_and_queue_waits():
    rows = generate_trace(20_000, seed=4, days=7.0)
    per_minute = Counter(r.requested_at.replace(second=0, microsecond=0) for r in rows)
    counts = np.array(list(per_minute.values()))
    mean_rate = len(rows) / (7 * 1440)
    assert counts.max() > 5 * mean_rate  # bursts: minutes far above the average rate
    busy = {minute for minute, c in per_minute.items() if c > 4 * mean_rate}
    wait = lambda rs: float(np.mean([_ms(r.requested_at, r.started_at) for r in rs]))  # noqa: E731
    in_burst = [r for r in rows if r.requested_at.replace(second=0, microsecond=0) in busy]
    outside = [r for r in rows if r.requested_at.replace(second=0, microsecond=0) not in busy]
    assert in_burst and wait(in_burst) > 3 * wait(outside)


def test_generate_cold_starts_follow_idle_gaps(trace):
    last: dict[str, datetime] = {}
    after_idle, warm = [], []
    for r in trace:
        if r.provider == "self-hosted":
            if r.model in last:
                gap = (r.requested_at - last[r.model]).total_seconds()
                if gap > 2 * 3600:
                    after_idle.append(r.cold_start)
                elif gap < 1800:
                    warm.append(r.cold_start)
            last[r.model] = r.requested_at
            if r.cold_start:
                assert 1500 <= r.cold_start_ms <= 60_000 and r.inference_ms >= 0
            else:
                assert r.cold_start_ms == 0
    assert len(after_idle) > 100 and len(warm) > 50
    assert np.mean(after_idle) > 0.6 and np.mean(warm) < 0.2, (np.mean(after_idle), np.mean(warm))


def test_generate_start_days_and_bad_arguments():
    start = datetime(2026, 4, 1, 6, tzinfo=timezone.utc)
    rows = generate_trace(50, seed=0, start=start, days=1.5)
    assert all(start <= r.requested_at < start + timedelta(days=1.5) for r in rows)
    assert generate_trace(0) == []
    with pytest.raises(ValueError, match="timezone"):
        generate_trace(5, start=datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        generate_trace(-1)


# --- files ---------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_write_read_round_trip(trace, tmp_path, suffix):
    path = tmp_path / f"quarter{suffix}"
    assert write_trace(trace, path) == len(trace)
    assert list(read_trace(path)) == trace
    rows, errors = load_trace(path)
    assert rows == trace and errors == []
    assert [r.line for r in rows[:3]] == [1, 2, 3]
    assert not list(tmp_path.glob(".*.tmp"))


def test_written_jsonl_format(trace, tmp_path):
    path = tmp_path / "t.jsonl"
    write_trace(trace[:20], path)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(records) == 20 and all(list(rec) == list(FIELDS) for rec in records)
    rec = records[0]
    assert rec["provider"] in ("self-hosted", "api")
    for name in STAMPS:
        assert rec[name].endswith("Z") and len(rec[name]) == len("2026-01-01T00:00:00.000Z")
    api = next(json.loads(json.dumps(r.to_record())) for r in trace if r.provider == "api")
    assert api["gpu_type"] == "" and api["gpu_seconds"] == 0 and api["api_cost_usd"] > 0


def test_epoch_ms_and_other_time_spellings_accepted(trace, tmp_path):
    row = trace[0]
    rec = row.to_record()
    epoch = {**rec, **{n: int(getattr(row, n).timestamp() * 1000) for n in STAMPS}}
    offset = {**rec, "job_id": "offset", "requested_at": row.requested_at.astimezone(
        timezone(timedelta(hours=2))).isoformat(timespec="milliseconds")}
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in (epoch, offset)) + "\n")
    rows, errors = load_trace(path)
    assert errors == []
    assert rows[0] == row
    assert rows[1] == dataclasses.replace(row, job_id="offset")

    table = pa.Table.from_pylist([epoch])  # epoch ms as an int64 Parquet column
    assert table.schema.field("requested_at").type == pa.int64()
    pq.write_table(table, tmp_path / "t.parquet")
    assert list(read_trace(tmp_path / "t.parquet")) == [row]


def _bad_trace_lines(trace: list[TraceRow]) -> tuple[list[str], list[TraceRow], dict[int, str]]:
    """JSON lines mixing good rows and one of each kind of bad row; expected line -> reason."""
    good = list(trace[:12])
    api = next(r for r in trace[12:] if r.provider == "api")
    good.append(api)
    rec = lambda i: dict(good[i].to_record())  # noqa: E731

    def bad_id(i: int, **changes) -> dict:
        return {**rec(i), "job_id": f"bad-{i}", **changes}

    missing = bad_id(1)
    del missing["started_at"], missing["seed"]
    out_of_order = bad_id(2, delivered_at=format_time(good[2].completed_at - timedelta(milliseconds=250)))
    bad: list[tuple[str, str]] = [
        (json.dumps(missing), "missing fields: started_at, seed"),
        (json.dumps(bad_id(3, requested_at="yesterday at noon")),
         "requested_at 'yesterday at noon' is not an ISO-8601"),
        (json.dumps(out_of_order), "delivered_at is before completed_at (by 250 ms)"),
        (json.dumps(bad_id(4, gpu_seconds=-1.5)), "gpu_seconds is negative (-1.5)"),
        (json.dumps(bad_id(5, cold_start_ms=float("nan"))), "cold_start_ms is nan (not a finite number)"),
        (json.dumps(bad_id(6, provider="gpu-cloud")), "provider 'gpu-cloud' is not one of self-hosted, api"),
        (json.dumps({**good[-1].to_record(), "job_id": "bad-api", "api_cost_usd": None}),
         "api row has no api_cost_usd"),
        (json.dumps(rec(0)), f"duplicate job_id {good[0].job_id!r} (first seen on line 1)"),
        ("{not json", "not valid JSON"),
        (json.dumps(bad_id(7, requested_at="2026-01-05T09:00:00")), "has no time zone"),
        (json.dumps(bad_id(8, started_at=rec(8)["requested_at"], completed_at=rec(8)["requested_at"],
                           cold_start=True, cold_start_ms=5000.0)), "cold_start_ms (5000) is longer than"),
        (json.dumps([1, 2]), "a row must be a JSON object, got list"),
    ]
    lines: list[str] = []
    expected: dict[int, str] = {}
    goods = iter(good)
    for reason_line, reason in bad:
        lines.append(json.dumps(next(goods).to_record()))
        lines.append(reason_line)
        expected[len(lines)] = reason
    lines.append("")  # a blank line is skipped but still counts
    lines.extend(json.dumps(r.to_record()) for r in goods)
    return lines, good, expected


def test_load_trace_rejects_bad_rows_by_line_and_keeps_the_rest(trace, tmp_path):
    lines, good, expected = _bad_trace_lines(trace)
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    rows, errors = load_trace(path)
    assert rows == good
    assert [r.line for r in rows] == [i + 1 for i, text in enumerate(lines)
                                      if text and i + 1 not in expected]
    assert [e.line for e in errors] == sorted(expected)
    for err in errors:
        assert expected[err.line] in err.reason, (err.line, err.reason)
        assert str(err) == f"line {err.line}: {err.reason}"
    by_line = {e.line: e for e in errors}
    assert by_line[2].job_id == "bad-1"  # job_id kept when the row had one
    assert by_line[min(k for k, v in expected.items() if v == "not valid JSON")].job_id is None
    assert str(by_line[6]).startswith("line 6: delivered_at is before completed_at")

    with pytest.raises(TraceFormatError, match="line 2: missing fields"):
        list(read_trace(path))


def test_load_trace_parquet_reports_row_numbers(trace, tmp_path):
    records = [r.to_record() for r in trace[:5]]
    records[1] = {**records[1], "gpu_seconds": -2.0}
    records[3] = {**records[3], "delivered_at": "2025-12-31T23:59:59.000Z"}  # before completed_at
    path = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pylist(records), path)
    rows, errors = load_trace(path)
    assert rows == [trace[0], trace[2], trace[4]]
    assert [(e.line, e.unit) for e in errors] == [(2, "row"), (4, "row")]
    assert str(errors[0]) == "row 2: gpu_seconds is negative (-2.0)"
    assert "delivered_at is before completed_at" in errors[1].reason


def test_unreadable_files(tmp_path):
    with pytest.raises(TraceFormatError, match="unknown trace format"):
        load_trace(tmp_path / "t.csv")
    (tmp_path / "t.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(TraceFormatError, match="Parquet"):
        load_trace(tmp_path / "t.parquet")
    with pytest.raises(TraceFormatError):
        write_trace([], tmp_path / "t.csv")


def test_json_array_file(trace, tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps([r.to_record() for r in trace[:3]] + [{"job_id": "x"}], indent=2))
    rows, errors = load_trace(path)
    assert rows == trace[:3]
    assert len(errors) == 1 and str(errors[0]).startswith("row 4: missing fields")


def test_trace_row_validates_on_construction(trace):
    row = trace[0]
    with pytest.raises(InvalidTraceRow, match="delivered_at is before completed_at"):
        dataclasses.replace(row, delivered_at=row.completed_at - timedelta(seconds=1))
    with pytest.raises(InvalidTraceRow, match="timezone-aware"):
        dataclasses.replace(row, requested_at=row.requested_at.replace(tzinfo=None))
    with pytest.raises(InvalidTraceRow, match="api row has no api_cost_usd"):
        dataclasses.replace(row, provider="api", gpu_type="", gpu_seconds=0.0, api_cost_usd=None)
    assert isinstance(TraceError(3, None, "x"), TraceError)


# --- JobCompleted ----------------------------------------------------------------------------

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
