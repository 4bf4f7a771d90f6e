"""Human ratings: import a ratings file, list what is stored, link to the rating page."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from cli.common import ConfigOpt, console, print_table, settings_from


def ratings_import(file: Path = typer.Argument(..., help="JSON Lines, one rating per line: rating_id, job_a, job_b, "
                                                     "winner (a, b or tie), rater, time (ISO-8601 UTC or epoch ms)."),
                   skip_invalid: bool = typer.Option(False, "--skip-invalid",
                                                     help="Publish the valid lines even if some are invalid (default: "
                                                          "publish nothing when any line is invalid)."),
                   config: Optional[Path] = ConfigOpt) -> None:
    """Validate a ratings file and publish it to ratings.pairwise; the worker stores each rating_id once."""
    settings = settings_from(config, find_stack=True)
    from aiokafka.errors import KafkaError
    from rich.markup import escape

    from contracts.topics import RATINGS
    from inference.ratings import import_ratings

    if not file.is_file():
        console.print(f"[red]no such file:[/] {escape(str(file))}")
        raise typer.Exit(2)
    try:
        result = import_ratings(settings.bootstrap_servers, file, skip_invalid=skip_invalid)
    except (KafkaError, OSError) as exc:
        console.print(f"[red]publishing failed[/] ({settings.broker_url}): {escape(str(exc) or type(exc).__name__)}")
        raise typer.Exit(1) from None
    for err in result.errors:
        console.print(f"[yellow]rejected[/] {escape(str(err))}")
    if result.errors and not skip_invalid:
        console.print(f"[red]nothing published:[/] {len(result.errors)} invalid line(s); fix them or pass --skip-invalid")
        raise typer.Exit(1)
    console.print(f"published {result.published} ratings to {RATINGS}"
                  + (f"; skipped {len(result.errors)} invalid line(s)" if result.errors else ""))


def ratings_list(fmt: str = typer.Option("table", "--format", "-f", help="table, csv or json."),
                 config: Optional[Path] = ConfigOpt) -> None:
    """Stored ratings per rater: count, winners, time range, and ratings naming a job not stored."""
    settings = settings_from(config)
    import sql as sql_files
    from warehouse.client import WarehouseError, open_reader

    try:
        table = open_reader(settings.dsn).query(sql_files.report("ratings_summary"))
    except WarehouseError as exc:
        console.print(f"[red]ratings list failed:[/] {exc}")
        raise typer.Exit(1) from None
    print_table(table, fmt)


def ratings_url(rater: str = typer.Option("anonymous", help="Rater id to put in the link."),
                config: Optional[Path] = ConfigOpt) -> None:
    """Print the link to the running worker's blind A/B rating page, with a rater token (opens the
    page, not the SQL view)."""
    settings = settings_from(config)
    from urllib.parse import urlencode

    from warehouse.owner import live_owner

    owner = live_owner(settings.chdb_path) if settings.chdb_path else None
    base, token = (owner.url, owner.token) if owner else (f"http://{settings.web_host}:{settings.web_port}",
                                                          os.environ.get("SENTINEL_QUERY_TOKEN", ""))
    if owner is not None and owner.role == "store":  # the workers serve the page, with the store's token
        from worker.membership import registered_workers

        workers = registered_workers(settings.data_dir)
        if not workers:
            console.print("[red]no running worker[/] serves the rating page (the store role runs, no worker does)")
            raise typer.Exit(1)
        base = workers[0].url
    if not token:
        console.print("[red]no token:[/] no running worker owns the embedded store, and SENTINEL_QUERY_TOKEN is not set")
        raise typer.Exit(1)
    from worker.ratings import rater_token

    typer.echo(f"{base}/sentinel/rate/?{urlencode({'token': rater_token(token), 'rater': rater})}")
