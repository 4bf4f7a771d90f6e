"""The warehouse schema: apply pending migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from cli.common import ConfigOpt, console, settings_from


def db_migrate(config: Optional[Path] = ConfigOpt) -> None:
    """Apply pending ClickHouse migrations from sql/migrations (idempotent)."""
    settings = settings_from(config)
    from warehouse.client import ClickHouseWarehouse, migrate
    from warehouse.owner import live_owner

    if settings.chdb_path and live_owner(settings.chdb_path):
        console.print("a running worker owns this store and has migrated it at start; nothing to do")
        return
    warehouse = ClickHouseWarehouse(settings.dsn)
    applied = migrate(warehouse)
    warehouse.close()
    console.print(f"applied {applied}" if applied else "schema up to date")
