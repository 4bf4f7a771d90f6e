"""Benchmark snapshots: the report's point estimates per window, stored for trends.

One row per model (niche ``*``) and per model x niche of a window, with the composite and each
component, cost per image and p50/p95 latency, exactly as the report's JSON has them
(``snapshot_rows`` copies them from the report dict; nothing is recomputed here).
``sentinel.benchmark_snapshots`` (sql/migrations/0010) is a ReplacingMergeTree keyed by window
and row, so taking a window again replaces its rows, never adds any.

Taken on a schedule by the worker (a Faust timer calls ``take_due``: the last closed periods of
``snapshot_period_s``, recomputed so late events count) and on demand (``sentinel report
--snapshot``). The trend chart of the HTML report and the Grafana trend panels read the table.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pyarrow as pa

from reports.report import benchmark
from sentinel.bootstrap import BootstrapConfig
from sentinel.composite import QualityConfig
from sentinel.cost import Pricing
from warehouse.window import Window

TABLE = "sentinel.benchmark_snapshots"
VALUES = ("composite", "fid", "fid_score", "cmmd", "clip", "human", "cost_per_image_usd", "p50_latency_ms",
          "p95_latency_ms")
TS = pa.timestamp("ms", tz="UTC")
SNAPSHOT_SCHEMA = pa.schema([("window_start", TS), ("window_end", TS), ("model", pa.string()), ("niche", pa.string()),
                             ("scorer_version", pa.string()), ("jobs", pa.uint64())]
                            + [(k, pa.float64()) for k in VALUES] + [("taken_at", TS)])


def snapshot_rows(report: dict[str, Any], window: Window, taken_at: datetime | None = None) -> pa.Table:
    """The report's model rows (niche '*') and model x niche rows as snapshot rows of ``window``."""
    taken_at = taken_at or datetime.now(timezone.utc)
    rows = [{"niche": "*", **r} for r in report["models"]] + list(report["niches"])
    cols: dict[str, list] = {f.name: [] for f in SNAPSHOT_SCHEMA}
    for r in rows:
        cols["window_start"].append(window.start)
        cols["window_end"].append(window.end)
        cols["model"].append(r["model"])
        cols["niche"].append(r["niche"])
        cols["scorer_version"].append(report["scorer_version"])
        cols["jobs"].append(int(r.get("jobs") or 0))
        for k in VALUES:
            v = r.get(k)
            cols[k].append(None if v is None else float(v))
        cols["taken_at"].append(taken_at)
    return pa.table(cols, schema=SNAPSHOT_SCHEMA)


def store_snapshot(warehouse: Any, report: dict[str, Any], window: Window) -> int:
    """Store the report of ``window`` as its snapshot (replacing an earlier one); rows written."""
    rows = snapshot_rows(report, window)
    if rows.num_rows:
        warehouse.insert(TABLE, rows)
    return rows.num_rows


def take_snapshot(warehouse: Any, pricing: Pricing, window: Window, scorer_version: str = "",
                  quality: QualityConfig = QualityConfig()) -> int:
    """Compute the report of ``window`` (point estimates only: no bootstrap) and store it."""
    report = benchmark(warehouse, pricing, window, scorer_version, quality, BootstrapConfig(resamples=0))
    return store_snapshot(warehouse, report, window)


def due_windows(now: datetime, period_s: int, lookback: int) -> list[Window]:
    """The last ``lookback`` closed periods of ``period_s`` (aligned to the epoch), oldest first."""
    if period_s < 1 or lookback < 1:
        raise ValueError(f"snapshot period ({period_s}) and lookback ({lookback}) must be >= 1")
    epoch = int(now.timestamp())
    end = datetime.fromtimestamp(epoch - epoch % period_s, timezone.utc)
    step = timedelta(seconds=period_s)
    return [Window(end - (k + 1) * step, end - k * step) for k in reversed(range(lookback))]


def take_due(warehouse: Any, pricing: Pricing, settings: Any, now: datetime | None = None) -> int:
    """The worker's scheduled snapshots: every due window of the settings' period; rows written."""
    return sum(take_snapshot(warehouse, pricing, w, "", settings.quality_config())
               for w in due_windows(now or datetime.now(timezone.utc), settings.snapshot_period_s,
                                    settings.snapshot_lookback))
