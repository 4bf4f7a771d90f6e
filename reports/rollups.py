"""The report's queries over the report rollups when they give the event log's numbers.

Migration 0012 keeps, next to ``sentinel.jobs``/``scores`` (read with FINAL), hourly cells and
narrow per-job tables (``report_jobs``, ``report_scores``, ...). Each report query ``NAME.sql``
that reads the event log has a twin ``NAME_rollup.sql`` over those tables with the same
definitions (tests/sql/test_report_rollups.py checks both against numpy on one store); this
module picks the twin when the store has the tables and, for the queries that read scores, when
``report_rollup_check.sql`` finds every score of the asked version(s) placed at its job's hour
and (benchmark table, each job's latest score) no job-hour cell with two scorer versions.
The benchmark table's twin reads whole hours from the cells and the partial hours at the edges
of a window from the per-job tables.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

import sql as sql_files
from warehouse.window import Window

HOUR = timedelta(hours=1)
TWINS = ("benchmark", "bootstrap_jobs", "latency_cdf", "latency_breakdown", "cost_breakdown",
         "guard", "guard_failures", "guard_rubrics")
READS_SCORES = ("benchmark", "bootstrap_jobs")


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def full_hours(window: Window) -> tuple[datetime, datetime]:
    """[hours_start, hours_end): the whole hours inside the window (start rounded up, end down);
    both equal to the window's end when it holds no whole hour."""
    w_start, w_end = window.start.astimezone(timezone.utc), window.end.astimezone(timezone.utc)
    floor_start = w_start.replace(minute=0, second=0, microsecond=0)
    start = floor_start if floor_start == w_start else floor_start + HOUR
    end = w_end.replace(minute=0, second=0, microsecond=0)
    return (start, end) if start < end else (w_end, w_end)


def full_months(window: Window) -> tuple[datetime, datetime]:
    """[months_start, months_end): the whole calendar months (UTC) inside the window; both equal
    to the window's end when it holds none."""
    w_start, w_end = window.start.astimezone(timezone.utc), window.end.astimezone(timezone.utc)
    floor_start = w_start.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    start = floor_start if floor_start == w_start else \
        floor_start.replace(year=floor_start.year + floor_start.month // 12, month=floor_start.month % 12 + 1)
    end = w_end.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (start, end) if start < end else (w_end, w_end)


def hours_params(window: Window) -> dict[str, str]:
    """The window's whole hours and whole months as query parameters (hours_*, months_*)."""
    (hs, he), (ms, me) = full_hours(window), full_months(window)
    hours, months = Window(hs, he).params(), Window(ms, me).params()
    return {"hours_start": hours["start"], "hours_end": hours["end"],
            "months_start": months["start"], "months_end": months["end"]}


def aligned(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` (with the window's start and end) plus its whole hours and months."""
    return {**params, **hours_params(Window(_utc(params["start"]), _utc(params["end"])))}


def tables_ready(reader: Any) -> bool:
    """Whether the store has the rollup tables (migrated since 0012)."""
    return reader.query(sql_files.report("report_rollup_tables")).column("n")[0].as_py() == 8


def usable(reader: Any, params: Mapping[str, Any]) -> dict[str, bool]:
    """Which twins give the event log's rows for ``params`` (window, scorer_version):
    ``jobs`` (the store has the tables and no job stored twice in the window: every twin that
    reads no scores), ``scores`` (also no score stored twice or without its job's hour: the
    bootstrap sample) and ``benchmark`` (also, for each job's latest score, no job-hour with two
    scorer versions). One check per report: ``benchmark()`` passes it on as ``params["rollups"]``."""
    if not tables_ready(reader):
        return {"jobs": False, "scores": False, "benchmark": False}
    full = aligned(params)
    dup = reader.query(sql_files.report("report_rollup_duplicates"), full).to_pylist()[0]
    row = reader.query(sql_files.report("report_rollup_check"), full).to_pylist()[0]
    jobs = dup["jobs"] == 0
    scores = jobs and dup["scores"] == 0 and row["unplaced"] == 0
    one_version = params.get("scorer_version", "") != "" or (row["max_versions_per_cell"] or 0) <= 1
    return {"jobs": jobs, "scores": scores, "benchmark": scores and one_version}


def rollups_answer(reader: Any, params: Mapping[str, Any]) -> bool:
    """Whether benchmark_rollup.sql gives benchmark.sql's numbers for these parameters."""
    return usable(reader, params)["benchmark"]


def query(reader: Any, name: str, params: Mapping[str, Any]) -> Any:
    """The Arrow table of report query ``name`` (one of TWINS), from its rollup twin when that
    gives the same rows (``params["rollups"]``: a :func:`usable` verdict; checked here if
    absent), else from the event log."""
    if name not in TWINS:
        raise KeyError(f"{name!r} has no rollup twin; twins: {TWINS}")
    bound = {k: v for k, v in params.items() if k != "rollups"}
    use = params.get("rollups") or usable(reader, {"scorer_version": "", **bound})
    if use["benchmark" if name == "benchmark" else "scores" if name in READS_SCORES else "jobs"]:
        return reader.query(sql_files.report(f"{name}_rollup"), aligned(bound))
    return reader.query(sql_files.report(name), bound)


def benchmark_table(reader: Any, window: Window, params: Mapping[str, Any]) -> Any:
    """The benchmark query's Arrow table (``params``: window, pricing and scorer_version)."""
    return query(reader, "benchmark", params)
