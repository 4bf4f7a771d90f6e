"""`sentinel import`: production history (JSONL, CSV or Parquet + image paths/URLs) into
jobs.completed. Wiring only: the import lives in inference/history.py."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Optional

import typer

from cli.common import ConfigOpt, broker_errors, console, settings_from
from cli.traffic import _warn_refusals
from config.settings import Settings


def import_history(file: Path = typer.Argument(..., help="History file: .jsonl, .json, .csv or .parquet with the trace "
                                                      "fields plus `image` (path or URL of the delivered image) and "
                                                      "optionally `reference_image`, `media_type`."),
                   ledger: Optional[Path] = typer.Option(None, help="Ids published by earlier imports (default: "
                                                                    "<data_dir>/imports/published_ids.jsonl)."),
                   check_warehouse: bool = typer.Option(True, "--check-warehouse/--no-check-warehouse",
                                                        help="Also skip job ids the warehouse already stores."),
                   config: Optional[Path] = ConfigOpt) -> None:
    """Publish each row as a JobCompleted event with its real image bytes (by reference above the inline
    limit); re-runs skip jobs already imported; bad rows are reported by line/row number with the reason."""
    settings = settings_from(config, find_stack=True)
    from rich.markup import escape
    from tqdm import tqdm

    from inference.history import Ledger, import_history as run_import
    from inference.publisher import JobPublisher
    from inference.trace_files import TraceFormatError
    from objects.store import ObjectStore

    if not file.is_file():
        console.print(f"[red]no such file:[/] {escape(str(file))}")
        raise typer.Exit(2)
    done = Ledger(ledger or settings.data_dir / "imports" / "published_ids.jsonl")
    stored = _warehouse_lookup(settings) if check_warehouse else None
    bar = tqdm(total=0, desc="import", unit="job", file=sys.stderr)

    def starting(rows) -> None:
        from inference.catalog import row_jobs

        _warn_refusals(settings, row_jobs([row.trace for row in rows]))  # what the worker will dead-letter
        bar.total = len(rows)
        bar.refresh()

    async def main():
        async with JobPublisher(settings.bootstrap_servers) as publisher:
            return await run_import(file, publisher, ObjectStore(settings.object_store_root), done,
                                    max_inline=settings.max_image_bytes, stored=stored, on_rows=starting,
                                    on_row=bar.update)

    with broker_errors(settings):
        try:
            result = asyncio.run(main())
        except TraceFormatError as exc:
            console.print(f"[red]cannot read {escape(str(file))}:[/] {escape(str(exc))}")
            raise typer.Exit(2) from None
        finally:
            bar.close()
    for err in result.refused:
        console.print(f"[yellow]refused[/] {escape(str(err))}")
    console.print(result.summary())


def _warehouse_lookup(settings: Settings):
    """Job ids the warehouse stores, through the CLI's read path; None (with a warning) when the
    warehouse cannot be read: the ledger alone then decides what was imported."""
    import sql as sql_files
    from warehouse.client import WarehouseError, open_reader

    try:
        reader = open_reader(settings.dsn)
    except WarehouseError as exc:
        console.print(f"[yellow]warning:[/] not checking the warehouse for imported jobs ({exc}); the ledger decides")
        return None
    query = sql_files.report("stored_copies")

    def stored(job_ids: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(job_ids), 5000):
            found.update(reader.query(query, {"job_ids": job_ids[start:start + 5000]}).column("job_id").to_pylist())
        return found

    return stored
