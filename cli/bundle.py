"""Benchmark bundles: export a report with the data, rubric and config behind it; verify one."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from cli.common import ConfigOpt, PricingOpt, console, parse_time, settings_from
from config.settings import ConfigError


def bundle_export(directory: Path = typer.Argument(..., help="New (or empty) directory to write the bundle to."),
                  quarter: Optional[str] = typer.Option(None, "--quarter", help="A calendar quarter, e.g. 2026Q1."),
                  start: Optional[str] = typer.Option(None, "--from", help="Window start (ISO-8601, UTC default)."),
                  end: Optional[str] = typer.Option(None, "--to", help="Window end, exclusive."),
                  scorer_version: str = typer.Option("", help="Scorer version to report (default: latest per job)."),
                  pricing: Optional[Path] = PricingOpt,
                  config: Optional[Path] = ConfigOpt) -> None:
    """Write a window's benchmark report with the data and config behind it, for others to verify.

    Parquet of the jobs, scores, ratings, FID moments and reference statistics the report read;
    config.json (rubric, pricing, drift thresholds, scorer identity); the report as JSON, Markdown
    and HTML; manifest.json with the sha256 of every file."""
    settings = settings_from(config, pricing_file=pricing)
    from sentinel.cost import PricingError
    from reports.bundle import ExportError, export_bundle
    from reports.bundle_config import scorer_identity
    from reports.quality import UnknownScorerVersion
    from warehouse.client import WarehouseError, open_reader
    from warehouse.window import EPOCH, FAR_FUTURE, Window

    if quarter and (start or end):
        raise typer.BadParameter("use --quarter or --from/--to, not both")
    try:
        window = Window.quarter(quarter) if quarter else Window(parse_time(start, EPOCH), parse_time(end, FAR_FUTURE))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        manifest = export_bundle(
            open_reader(settings.dsn), directory, pricing=settings.pricing(), window=window,
            scorer_version=scorer_version, quality=settings.quality_config(), bootstrap=settings.bootstrap_config(),
            drift=settings.drift_config().to_dict(), guard_rubric=_guard_rubric(),
            scorer=lambda version: scorer_identity(settings.clip_spec, settings.scorer_version, version),
            progress=lambda step: console.print(f"{step} …", highlight=False))
    except (PricingError, ConfigError, WarehouseError, UnknownScorerVersion, ExportError) as exc:
        console.print(f"[red]export failed:[/] {escape(str(exc))}")
        raise typer.Exit(1) from None
    rows = ", ".join(f"{table} {n:,}" for table, n in manifest["rows"].items())
    console.print(f"wrote {directory}: {len(manifest['files'])} files + manifest.json (rows: {rows}); "
                  f"check it with `sentinel bundle verify {escape(str(directory))}`", highlight=False)


def _guard_rubric() -> dict:
    """The Guard rubric in force (rubric.toml), or why it could not be read: it goes into the
    bundle for the record and must not stop an export."""
    from config.rubric import load_rubric

    try:
        return load_rubric().describe()
    except ConfigError as exc:
        return {"error": str(exc)}


def bundle_verify(directory: Path = typer.Argument(..., help="A directory written by `sentinel bundle export`."),
                  rel_tol: float = typer.Option(1e-9, "--rel-tol", help="Relative tolerance for floats."),
                  abs_tol: float = typer.Option(1e-9, "--abs-tol", help="Absolute tolerance for floats."),
                  workdir: Optional[Path] = typer.Option(None, "--workdir",
                                                         help="Where the temporary store goes (default: system temp).")) -> None:
    """Recompute every number of a bundle's report from the bundle alone and compare.

    A fresh embedded store in a temporary directory (no broker, no original store), the bundle's
    tables and config, the same report code; exit 0 when every file matches the manifest and every
    number agrees, 1 naming each file and number that does not, 2 when DIRECTORY is not a bundle."""
    from reports.compare import Tolerance
    from reports.manifest import BundleError
    from reports.verify import verify_bundle

    def files_checked(problems: list) -> None:
        for problem in problems:
            console.print(f"[red]FILE[/] {escape(str(problem))}", highlight=False)
        if not problems:
            console.print("manifest: every file's sha256 matches", highlight=False)

    try:
        result = verify_bundle(directory, tolerance=Tolerance(rel=rel_tol, abs=abs_tol), workdir=workdir,
                               progress=lambda step: console.print(f"{step} …", highlight=False),
                               files_checked=files_checked)
    except BundleError as exc:
        console.print(f"[red]not a bundle:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    if result.error:
        console.print(f"[red]ERROR[/] {escape(result.error)}", highlight=False)
    for rel in result.renderings:
        console.print(f"[red]RENDERING[/] {rel}: differs from the rendering of report/report.json", highlight=False)
    comparison = result.comparison
    if comparison is not None:
        for diff in comparison.differences:
            console.print(f"[red]DIFF[/] report/report.json {escape(str(diff))}", highlight=False)
        console.print(f"{comparison.numbers:,} numbers compared (rel {rel_tol:g}, abs {abs_tol:g}): "
                      f"{len(comparison.differences):,} differ", highlight=False)
    if not result.ok:
        console.print(f"[red]bundle does NOT verify:[/] {escape(str(directory))}")
        raise typer.Exit(1)
    console.print(f"[green]bundle verifies:[/] all files match the manifest and every number of the report "
                  f"was recomputed from the bundle ({escape(str(directory))})")
