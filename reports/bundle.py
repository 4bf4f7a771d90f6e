"""`sentinel bundle export`: a benchmark report packed with exactly the data and config behind it.

Layout of a bundle directory::

    manifest.json              sha256 and size of every other file (reports.manifest)
    config.json                window, scorer version, rubric, pricing, drift, scorer identity
                               (reports.bundle_config)
    data/jobs.parquet          the window's jobs, every stored column   (sql/reports/bundle_*.sql)
    data/scores.parquet        their scores the report reads (embeddings included, for CMMD)
    data/ratings.parquet       the pairwise ratings the Bradley-Terry fit counted
    data/feature_moments.parquet  the FID moment states merged for the window
    data/feature_moment_tail.parquet  the window's image embeddings no exported state holds yet
    data/reference_sets.parquet   the niches' reference statistics (FID/CMMD, anchors)
    data/benchmark_snapshots.parquet  the stored snapshots behind the report's trend
    report/report.json         reports.report.benchmark's result
    report/report.md, report/report.html   its renderings

The tables are what the report's queries read, selected by the same window and scorer version,
so a fresh store holding only them gives the same report (`sentinel bundle verify`,
reports/verify.py). Images are not included: no report number reads them.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

import sql as sql_files
from reports import report as reports
from reports.bundle_config import bundle_config
from reports.manifest import write_manifest
from reports.quality import QualityConfig
from sentinel.bootstrap import BootstrapConfig
from sentinel.cost import Pricing
from warehouse.moment_reads import MomentsChanging, consistent_read
from warehouse.references import extractor_id
from warehouse.window import Window

# table in the store -> its export query (sql/reports/bundle_<table>.sql); verify loads them in this order
TABLES = ("jobs", "scores", "ratings", "feature_moments", "feature_moment_tail", "reference_sets",
          "benchmark_snapshots")
OPTIONAL = frozenset({"feature_moment_tail"})  # bundles exported before migration 0014 have none
CONFIG = "config.json"
REPORT_JSON, REPORT_MD, REPORT_HTML = "report/report.json", "report/report.md", "report/report.html"


class ExportError(RuntimeError):
    pass


def data_path(table: str) -> str:
    return f"data/{table}.parquet"


def report_json(report: Mapping[str, Any]) -> str:
    """The report as JSON text, exactly as `sentinel report --format json` writes it."""
    return json.dumps(report, indent=2, default=str)


def export_bundle(reader: Any, directory: Path, *, pricing: Pricing, window: Window, scorer_version: str,
                  quality: QualityConfig, bootstrap: BootstrapConfig, drift: Mapping[str, Any] | None,
                  scorer: Callable[[str | None], Mapping[str, Any]], guard_rubric: Mapping[str, Any] | None = None,
                  progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Write a bundle of the report over ``window`` into ``directory`` (absent or empty); return
    the manifest. ``scorer(report_version)`` describes the scorer (reports.bundle_config.scorer_identity).
    Written beside ``directory`` first and renamed when complete: a failed export leaves nothing."""
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ExportError(f"{directory} exists and is not an empty directory; name a new one")
    progress("computing the report")
    report = reports.benchmark(reader, pricing, window, scorer_version, quality, bootstrap)
    version = report["quality"]["scorer_version"]
    tables = _export_tables(reader, window, scorer_version, version, progress)
    _check_consistent(report, tables)
    partial = directory.parent / f".{directory.name}.partial-{os.getpid()}"
    try:
        manifest = _write(partial, report, tables, bundle_config(
            window=window, scorer_version=scorer_version, pricing=pricing, quality=quality, bootstrap=bootstrap,
            report=report, drift=drift, scorer=scorer(version), guard_rubric=guard_rubric),
            reader.query(sql_files.report("applied_migrations")).column("version").to_pylist())
        if directory.exists():
            directory.rmdir()  # empty (checked above)
        partial.rename(directory)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return manifest


def _write(directory: Path, report: Mapping[str, Any], tables: Mapping[str, pa.Table], config: Mapping[str, Any],
           migrations: list[int]) -> dict[str, Any]:
    (directory / "data").mkdir(parents=True, exist_ok=True)
    (directory / "report").mkdir(exist_ok=True)
    for table, rows in tables.items():
        pq.write_table(rows, directory / data_path(table))
    (directory / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    (directory / REPORT_JSON).write_text(report_json(report))
    (directory / REPORT_MD).write_text(reports.render_markdown(report))
    (directory / REPORT_HTML).write_text(reports.render_html(report))
    meta = {"created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "rows": {table: rows.num_rows for table, rows in tables.items()}, "store_migrations": migrations}
    return write_manifest(directory, meta)


def _export_tables(reader: Any, window: Window, requested: str, version: str | None,
                   progress: Callable[[str], None]) -> dict[str, pa.Table]:
    """The rows the report read, per table. ``version``: the scorer version of its FID/CMMD."""
    params = {**window.params(), "scorer_version": requested}
    queries = {"jobs": params, "scores": params, "ratings": params,
               "feature_moments": {**params, "scorer_version": version or ""},
               "reference_sets": {"extractor": extractor_id(version) if version else ""},
               "benchmark_snapshots": window.params()}
    tables = {}
    for table, query in queries.items():
        progress(f"exporting {table}")
        if table == "feature_moments":  # states and the tail rows they do not hold, as one snapshot
            tables[table], tables["feature_moment_tail"] = _moments(reader, query)
        else:
            tables[table] = reader.query(sql_files.report(f"bundle_{table}"), query)
    if not requested and version and tables["feature_moments"].num_rows == tables["feature_moment_tail"].num_rows == 0:
        tables["feature_moments"] = reader.query(sql_files.report("bundle_moment_marker"), {"scorer_version": version})
        if tables["feature_moments"].num_rows == 0:  # the version's images are all in the tail
            tables["feature_moment_tail"] = reader.query(sql_files.report("bundle_moment_tail_marker"),
                                                         {"scorer_version": version})
    return tables


def _moments(reader: Any, query: Mapping[str, Any]) -> tuple[pa.Table, pa.Table]:
    try:
        return consistent_read(reader, dict(query), lambda: reader.query(sql_files.report("bundle_feature_moments"), query),
                               lambda: reader.query(sql_files.report("bundle_feature_moment_tail"), query))
    except MomentsChanging as exc:
        raise ExportError(str(exc)) from None


def _check_consistent(report: Mapping[str, Any], tables: Mapping[str, pa.Table]) -> None:
    """The store may be live (a worker still writing): the exported jobs must be the report's."""
    jobs = sum(int(m["jobs"]) for m in report["models"])
    # the report counts delivered images; guard mode also exports the discarded attempts (delivered false)
    exported = tables["jobs"]
    delivered = sum(exported.column("delivered").to_pylist()) if "delivered" in exported.column_names \
        else exported.num_rows
    if delivered != jobs:
        raise ExportError(f"the report counted {jobs:,} jobs but {delivered:,} delivered ones were exported: the "
                          "store changed during the export (jobs still arriving in the window?); export again")
