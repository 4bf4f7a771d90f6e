"""Trace files: round trips in JSON Lines and Parquet, the validating reader that reports bad
rows by line and keeps the rest, and files that cannot be read at all."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from inference.trace_files import TraceFormatError, load_trace, read_trace, write_trace
from inference.trace_generator import generate_trace
from inference.trace_row import FIELDS, TraceRow, format_time

STAMPS = ("requested_at", "started_at", "completed_at", "delivered_at")


@pytest.fixture(scope="module")
def trace() -> list[TraceRow]:
    return generate_trace(2000, seed=1)


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
