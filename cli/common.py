"""What the commands share: the stderr console, the --config and --pricing options, settings
loading with a clean exit on a bad configuration, time parsing and table output. Light imports
only: every command, `--help` included, pays for what this module imports."""

from __future__ import annotations

import json
import logging
import os
import sys
import tomllib
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape

from config.settings import PROJECT_ROOT, ConfigError, Settings, load_settings

console = Console(stderr=True, soft_wrap=True)  # one message, one line: the terminal wraps it

# The client libraries log a failed connection before raising it; the commands report the raised
# error in one line. Without a configured handler (every command but `worker`) these would reach
# Python's last-resort handler on stderr; with one (setup_logging), they still propagate to it.
for _name in ("aiokafka", "clickhouse_connect"):
    logging.getLogger(_name).addHandler(logging.NullHandler())

ConfigOpt = typer.Option(None, "--config", help="TOML file with settings (also SENTINEL_CONFIG).")
PricingOpt = typer.Option(None, "--pricing", help="Pricing TOML for cost per image (default: pricing.toml; "
                                                  "also SENTINEL_PRICING_FILE).")


def settings_from(config: Optional[Path], *, find_stack: bool = False, **overrides) -> Settings:
    """The settings of one command; a configuration error ends it with exit code 2.

    ``find_stack``: when no broker URL is configured (environment or TOML), use the broker of the
    embedded stack announced in the data dir (``sentinel up``'s discovery file), if one runs."""
    try:
        settings = load_settings(config, **overrides)
    except ConfigError as exc:
        console.print(f"[red]configuration error:[/] {exc}")
        raise typer.Exit(2) from None
    if find_stack and not _broker_configured(config):
        from devstack.discovery import running_stack

        stack = running_stack(settings.data_dir)
        if stack is not None:
            settings = settings.with_(broker_url=stack.broker_url)
    return settings


def _broker_configured(config: Optional[Path]) -> bool:
    """Whether the broker URL was set explicitly: SENTINEL_BROKER_URL or ``broker_url`` in the TOML."""
    if "SENTINEL_BROKER_URL" in os.environ:
        return True
    path = config or os.environ.get("SENTINEL_CONFIG")
    if not path:
        return False
    with open(path, "rb") as fh:  # load_settings has read it already: it exists and parses
        return "broker_url" in tomllib.load(fh)


@contextmanager
def broker_errors(settings: Settings) -> Iterator[None]:
    """An unreachable or failing broker ends the command with one line naming the URL (exit 1)."""
    from aiokafka.errors import KafkaError

    try:
        yield
    except KafkaError as exc:
        console.print(f"[red]broker error[/] at {settings.broker_url}: {escape(str(exc) or type(exc).__name__)} "
                      "(set SENTINEL_BROKER_URL, or start the embedded stack with `sentinel up`)")
        raise typer.Exit(1) from None


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def registry_path(settings: Settings, registry: Optional[Path] = None) -> Path:
    """The model registry: ``--registry``, else the configured one, else models.toml."""
    return registry or Path(settings.model_registry or PROJECT_ROOT / "models.toml")


def parse_time(value: Optional[str], default: datetime) -> datetime:
    if not value:
        return default
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO-8601 time (e.g. 2026-01-01 or 2026-01-01T12:00:00Z)")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def print_table(table, fmt: str) -> None:
    """A pyarrow table to stdout as a rich table, CSV or JSON."""
    out = Console()
    if fmt == "json":
        out.print_json(json.dumps(table.to_pylist(), default=str))
    elif fmt == "csv":
        import pyarrow.csv as pacsv

        sink = sys.stdout.buffer
        pacsv.write_csv(table, sink)
    else:
        from rich.table import Table

        t = Table()
        for name in table.column_names:
            t.add_column(name)
        for row in table.to_pylist():
            t.add_row(*[str(v) for v in row.values()])
        out.print(t)


def counting_progress():
    """A live display of tasks with a bar, done/total and elapsed time, on the stderr console."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console)
