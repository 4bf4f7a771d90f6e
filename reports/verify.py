"""`sentinel bundle verify`: recompute a bundle's report from the bundle alone and compare.

1. The manifest: every file's sha256 (reports.manifest); a changed, missing or unlisted file is
   named.
2. A fresh embedded store (chDB in a temporary directory: no broker, no original store): the
   migrations of this code, then the bundle's Parquet tables loaded as they are.
3. The SAME report code, ``reports.report.benchmark``, with the bundle's window, scorer version,
   pricing, rubric and bootstrap settings (``config.json``) -- so whatever the report computes,
   columns added later included, is recomputed without a list of fields here.
4. The recomputed report (through JSON, as it was written) against ``report/report.json``, number
   by number (reports.compare; tolerance there), and ``report/report.md`` against the Markdown
   rendering of the bundled JSON (the HTML is covered by its digest).

Every difference is listed with its file and place in the report; the bundle verifies when there
are none.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from reports import report as reports
from reports.bundle import CONFIG, OPTIONAL, REPORT_JSON, REPORT_MD, TABLES, data_path, report_json
from reports.bundle_config import report_inputs
from reports.compare import Comparison, Tolerance, compare
from reports.manifest import BundleError, FileProblem, check_manifest, read_manifest


@dataclass
class VerifyResult:
    files: list[FileProblem] = field(default_factory=list)
    comparison: Comparison | None = None
    renderings: list[str] = field(default_factory=list)  # rendered files that differ from the JSON's rendering
    error: str = ""  # the report could not be recomputed: why
    rows: dict[str, int] = field(default_factory=dict)  # rows loaded per table

    @property
    def ok(self) -> bool:
        return not self.files and not self.renderings and not self.error and bool(self.comparison) \
            and self.comparison.agree  # type: ignore[union-attr]


def _read_json(directory: Path, rel: str) -> Any:
    try:
        return json.loads((directory / rel).read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(f"{rel}: cannot be read as JSON ({exc})") from None


def recompute(directory: Path, store: Path, inputs: Mapping[str, Any],
              progress: Callable[[str], None] = lambda _: None) -> tuple[dict[str, Any], dict[str, int]]:
    """The report over a fresh chDB store at ``store`` holding only the bundle's tables."""
    import pyarrow.parquet as pq

    from warehouse.client import ClickHouseWarehouse, migrate

    warehouse = ClickHouseWarehouse(f"chdb://{store}")
    try:
        progress("migrating a fresh store")
        migrate(warehouse)
        rows = {}
        for table in TABLES:
            if table in OPTIONAL and not (directory / data_path(table)).exists():
                rows[table] = 0
                continue
            try:
                data = pq.read_table(directory / data_path(table))
            except (OSError, ValueError) as exc:
                raise BundleError(f"{data_path(table)}: not a readable Parquet table ({exc})") from None
            progress(f"loading {table} ({data.num_rows:,} rows)")
            if data.num_rows:
                warehouse.insert(f"sentinel.{table}", data)
            rows[table] = data.num_rows
        progress("recomputing the report")
        return reports.benchmark(warehouse, **inputs), rows
    finally:
        warehouse.close()


def verify_bundle(directory: Path, *, tolerance: Tolerance = Tolerance(), workdir: Path | None = None,
                  progress: Callable[[str], None] = lambda _: None,
                  files_checked: Callable[[list[FileProblem]], None] = lambda _: None) -> VerifyResult:
    """Check ``directory`` (a bundle); BundleError when it is not one at all. ``files_checked``
    hears the manifest's verdict before the (slower) recomputation starts."""
    manifest = read_manifest(directory)
    result = VerifyResult(files=check_manifest(directory, manifest))
    files_checked(result.files)
    config, bundled = _read_json(directory, CONFIG), _read_json(directory, REPORT_JSON)
    try:
        inputs = report_inputs(config)
    except (KeyError, TypeError, ValueError) as exc:
        result.error = f"{CONFIG}: cannot rebuild the report's inputs ({type(exc).__name__}: {exc})"
        return result
    try:
        with tempfile.TemporaryDirectory(prefix="sentinel-verify-", dir=workdir) as tmp:
            recomputed, result.rows = recompute(directory, Path(tmp) / "chdb", inputs, progress)
    except BundleError as exc:
        result.error = str(exc)
        return result
    except Exception as exc:  # the report code's own errors (PricingError, a failed query): named, not a traceback
        result.error = f"recomputing the report failed: {type(exc).__name__}: {exc}"
        return result
    result.comparison = compare(bundled, json.loads(report_json(recomputed)), tolerance)
    try:
        if (directory / REPORT_MD).read_text() != reports.render_markdown(bundled):
            result.renderings.append(REPORT_MD)
    except Exception:  # unreadable, or a bundled JSON the renderer cannot take: differences above say which
        result.renderings.append(REPORT_MD)
    return result
