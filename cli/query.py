"""Reading the warehouse: ad hoc SQL, the benchmark report, drift alerts."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from cli.common import ConfigOpt, PricingOpt, console, parse_time, print_table, settings_from
from config.settings import ConfigError


def sql(query: str = typer.Argument(..., help="A read-only ClickHouse query."),
        fmt: str = typer.Option("table", "--format", "-f", help="table, csv or json."),
        config: Optional[Path] = ConfigOpt) -> None:
    """Run an ad hoc read-only query (works while the embedded worker runs)."""
    settings = settings_from(config)
    from warehouse.client import open_reader

    try:
        reader = open_reader(settings.dsn)
        table = reader.query(query)
    except Exception as exc:  # WarehouseError or the driver's own error: both carry a clear message
        console.print(f"[red]query failed:[/] {exc}")
        raise typer.Exit(1) from None
    print_table(table, fmt)


def report(start: Optional[str] = typer.Option(None, "--from", help="Window start (ISO-8601, UTC default)."),
           end: Optional[str] = typer.Option(None, "--to", help="Window end, exclusive."),
           quarter: Optional[str] = typer.Option(None, "--quarter", help="A calendar quarter, e.g. 2026Q1 "
                                                                       "(instead of --from/--to)."),
           fmt: str = typer.Option("table", "--format", "-f", help="table, json, csv, markdown or html."),
           output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file."),
           scorer_version: str = typer.Option("", help="Scorer version to report (default: latest per job)."),
           snapshot: bool = typer.Option(False, "--snapshot", help="Also store the report as the window's "
                                         "benchmark snapshot (replaces an earlier snapshot of the same window)."),
           pricing: Optional[Path] = PricingOpt,
           config: Optional[Path] = ConfigOpt) -> None:
    """The benchmark: per model (and niche) jobs, CLIP, p50/p95 latency, cost per image."""
    settings = settings_from(config, pricing_file=pricing)
    from sentinel.cost import PricingError
    from reports import report as reports
    from reports.quality import UnknownScorerVersion
    from warehouse.window import EPOCH, FAR_FUTURE, Window
    from warehouse.client import WarehouseError, open_reader

    if quarter and (start or end):
        raise typer.BadParameter("use --quarter or --from/--to, not both")
    try:
        window = Window.quarter(quarter) if quarter else \
            Window(parse_time(start, EPOCH), parse_time(end, FAR_FUTURE))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        data = reports.benchmark(open_reader(settings.dsn), settings.pricing(), window, scorer_version,
                                 settings.quality_config(), settings.bootstrap_config())
    except (PricingError, ConfigError, WarehouseError, UnknownScorerVersion) as exc:
        console.print(f"[red]report failed:[/] {exc}")
        raise typer.Exit(1) from None
    if snapshot:
        _store_snapshot(settings, data, window)
    _emit_report(data, fmt, output)


def _store_snapshot(settings, data: dict, window) -> None:
    """The report's rows into sentinel.benchmark_snapshots (a writer: not while a worker owns the
    embedded store; that worker takes snapshots itself every snapshot_interval_s)."""
    from reports.snapshots import store_snapshot
    from warehouse.client import ClickHouseWarehouse, WarehouseError, migrate
    from warehouse.owner import live_owner

    if settings.chdb_path and live_owner(settings.chdb_path):
        console.print("[red]snapshot not stored:[/] a running worker owns this embedded store (it stores snapshots "
                      f"every {settings.snapshot_interval_s:g} s); stop it to store one now")
        raise typer.Exit(1)
    try:
        warehouse = ClickHouseWarehouse(settings.dsn)
        try:
            migrate(warehouse)
            rows = store_snapshot(warehouse, data, window)
        finally:
            warehouse.close()
    except WarehouseError as exc:
        console.print(f"[red]snapshot not stored:[/] {exc}")
        raise typer.Exit(1) from None
    console.print(f"stored {rows} snapshot rows for {window.start.isoformat()} → {window.end.isoformat()}")


def _emit_report(data: dict, fmt: str, output: Optional[Path]) -> None:
    from reports import report as reports

    if fmt == "table":
        reports.render_terminal(data, Console())
        return
    if fmt == "json":
        text = json.dumps(data, indent=2, default=str)
    elif fmt == "html":
        text = reports.render_html(data)
    elif fmt == "markdown":
        text = reports.render_markdown(data)
    elif fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        rows = reports.csv_rows(data)
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["model"])
        writer.writeheader()
        writer.writerows(rows)
        text = buf.getvalue()
    else:
        console.print(f"[red]unknown format {fmt!r}[/]: use table, json, csv, markdown or html")
        raise typer.Exit(2)
    if output:
        output.write_text(text)
        console.print(f"wrote {output}")
    else:
        sys.stdout.write(text)


def alerts(open_only: bool = typer.Option(False, "--open", help="Only incidents still firing."),
           start: Optional[str] = typer.Option(None, "--from", help="Window start (ISO-8601, UTC default)."),
           end: Optional[str] = typer.Option(None, "--to", help="Window end, exclusive."),
           fmt: str = typer.Option("table", "--format", "-f", help="table, csv or json."),
           config: Optional[Path] = ConfigOpt) -> None:
    """List current and past quality-drift incidents (firing and resolved)."""
    settings = settings_from(config)
    import sql as sql_files
    from warehouse.window import EPOCH, FAR_FUTURE, Window
    from warehouse.client import WarehouseError, open_reader

    window = Window(parse_time(start, EPOCH), parse_time(end, FAR_FUTURE))
    try:
        table = open_reader(settings.dsn).query(sql_files.report("alerts"),
                                                {**window.params(), "only_open": int(open_only)})
    except WarehouseError as exc:
        console.print(f"[red]alerts failed:[/] {exc}")
        raise typer.Exit(1) from None
    print_table(table, fmt)
