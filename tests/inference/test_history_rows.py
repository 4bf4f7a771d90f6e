"""History files for `sentinel import` (inference/history_rows.py): JSON Lines, CSV and Parquet
rows parsed like trace rows plus image locations; every bad row named by line or row number."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from history_fixtures import good

from inference.history_rows import load_history


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_jsonl_good_rows_and_every_bad_row_by_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "h.jsonl", [
        good(1, seed=42, reference_image="refs/1.jpg", media_type="image/png"),
        good(2, image=...),  # line 2: no image
        "{not json",  # line 3
        good(4, provider="on-prem"),  # line 4: bad field
        good(1),  # line 5: duplicate id
        good(6, requested_at="2026-02-01T10:00:00"),  # line 6: no zone
        good(7, provider="api", gpu_type=None, gpu_seconds=None, api_cost_usd=0.04),
    ])
    rows, errors = load_history(path)
    assert [r.job_id for r in rows] == ["h-1", "h-7"]
    first = rows[0]
    assert (first.image, first.reference_image, first.media_type, first.seed_known) == \
        ("images/1.png", "refs/1.jpg", "image/png", True)
    assert first.trace.seed == 42 and first.trace.requested_at == datetime(2026, 2, 1, 10, tzinfo=timezone.utc)
    assert rows[1].seed_known is False and rows[1].trace.gpu_seconds == 0.0
    assert [(e.unit, e.position, e.job_id) for e in errors] == [
        ("line", 2, "h-2"), ("line", 3, None), ("line", 4, "h-4"), ("line", 5, "h-1"), ("line", 6, "h-6")]
    reasons = [e.reason for e in errors]
    assert "missing field: image" in reasons[0]
    assert reasons[1].startswith("not valid JSON")
    assert "provider 'on-prem'" in reasons[2]
    assert "duplicate job_id (first on line 1)" == reasons[3]
    assert "no time zone" in reasons[4]
    assert str(errors[0]).startswith("line 2 (h-2): ")


def test_csv_cells_are_typed_and_lines_count_the_header(tmp_path: Path) -> None:
    header = ("job_id,model,model_version,provider,niche,prompt,requested_at,started_at,completed_at,delivered_at,"
              "cold_start,cold_start_ms,gpu_type,gpu_seconds,api_cost_usd,seed,image,reference_image")
    lines = [
        header,
        'c-1,flux-dev,1,self-hosted,headshot,"a prompt, with a comma",1769940000000,1769940000250,'
        "1769940003000,1769940003100,true,1000,L4,2.75,,7,a.png,",
        "c-2,flux-dev,1,self-hosted,headshot,p,2026-02-01T10:00:00Z,2026-02-01T10:00:01Z,2026-02-01T10:00:02Z,"
        "2026-02-01T10:00:03Z,maybe,0,L4,1.5,,,b.jpg,",
        "c-3,proprietary-a,1,api,product,p,2026-02-01T10:00:00Z,2026-02-01T10:00:01Z,2026-02-01T10:00:02Z,"
        "2026-02-01T10:00:03Z,false,0,,,0.04,,https://example.com/c.webp,s3://bucket/ref.png",
        "c-4,flux-dev,1,self-hosted,headshot,p,x,x,x,x,false,0,L4,1,,,d.png,,extra",
    ]
    path = tmp_path / "h.csv"
    path.write_text("\n".join(lines) + "\n")
    rows, errors = load_history(path)
    assert [r.job_id for r in rows] == ["c-1", "c-3"]
    c1, c3 = rows
    assert c1.trace.prompt == "a prompt, with a comma" and c1.trace.cold_start is True
    assert c1.trace.cold_start_ms == 1000.0 and c1.trace.seed == 7 and c1.seed_known
    assert c1.trace.requested_at == datetime(2026, 2, 1, 10, 0, tzinfo=timezone.utc)
    assert c1.reference_image is None
    assert c3.trace.api_cost_usd == 0.04 and c3.reference_image == "s3://bucket/ref.png" and not c3.seed_known
    assert [(e.position, e.job_id) for e in errors] == [(3, "c-2"), (5, None)]
    assert "cold_start must be true or false" in errors[0].reason
    assert "more cells than the header" in errors[1].reason


def test_parquet_rows_are_numbered(tmp_path: Path) -> None:
    rows = [good(1), good(2, gpu_seconds=-1.0), good(3)]
    path = tmp_path / "h.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    good_rows, errors = load_history(path)
    assert [r.job_id for r in good_rows] == ["h-1", "h-3"]
    assert [(e.unit, e.position) for e in errors] == [("row", 2)] and "gpu_seconds is negative" in errors[0].reason


def test_an_unknown_extension_is_a_format_error(tmp_path: Path) -> None:
    from inference.trace_files import TraceFormatError

    (tmp_path / "h.txt").write_text("x")
    with pytest.raises(TraceFormatError):
        load_history(tmp_path / "h.txt")
