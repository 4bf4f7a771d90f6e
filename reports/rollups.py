"""The benchmark table's rows, from the report rollups when they answer exactly, else from the
event log.

``sql/reports/benchmark.sql`` reads the pre-aggregated tables of ``sql/migrations/0012`` (hourly
cells for the window's full hours, narrow per-job rows for the partial hours at its edges and
for the exact latency quantiles); ``benchmark_raw.sql`` reads ``sentinel.jobs``/``scores``
FINAL. Both give the same numbers (tests/sql/test_report_rollups.py); the rollups are used when
the store has them and ``report_rollup_check.sql`` finds every score placed at its job's hour
and, for each job's latest score (scorer_version ''), no job-hour with two scorer versions.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

import sql as sql_files
from warehouse.window import Window

HOUR = timedelta(hours=1)


def full_hours(window: Window) -> tuple[datetime, datetime]:
    """[hours_start, hours_end): the whole hours inside the window (start rounded up, end down);
    both equal to the window's end when it holds no whole hour."""
    w_start, w_end = window.start.astimezone(timezone.utc), window.end.astimezone(timezone.utc)
    floor_start = w_start.replace(minute=0, second=0, microsecond=0)
    start = floor_start if floor_start == w_start else floor_start + HOUR
    end = w_end.replace(minute=0, second=0, microsecond=0)
    return (start, end) if start < end else (w_end, w_end)


def hours_params(window: Window) -> dict[str, str]:
    start, end = full_hours(window)
    params = Window(start, end).params()
    return {"hours_start": params["start"], "hours_end": params["end"]}


def rollups_answer(reader: Any, params: Mapping[str, Any]) -> bool:
    """Whether benchmark.sql gives benchmark_raw.sql's numbers for these parameters."""
    if reader.query(sql_files.report("report_rollup_tables")).column("n")[0].as_py() != 5:
        return False
    row = reader.query(sql_files.report("report_rollup_check"), params).to_pylist()[0]
    return row["unplaced"] == 0 and (params["scorer_version"] != "" or (row["max_versions_per_cell"] or 0) <= 1)


def benchmark_table(reader: Any, window: Window, params: Mapping[str, Any]) -> Any:
    """The benchmark query's Arrow table (``params``: window, pricing and scorer_version)."""
    full = {**params, **hours_params(window)}
    if rollups_answer(reader, full):
        return reader.query(sql_files.report("benchmark"), full)
    return reader.query(sql_files.report("benchmark_raw"), params)
