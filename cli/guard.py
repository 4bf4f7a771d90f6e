"""`sentinel guard`: the verdict service (Guard mode). Wiring only; the service lives in guard/."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cli.common import ConfigOpt, console, settings_from, setup_logging


def guard(host: str = typer.Option("127.0.0.1", help="Address to bind (localhost by default; set "
                                                      "SENTINEL_GUARD_TOKEN before binding anything wider)."),
          port: int = typer.Option(8087, help="Port to listen on."),
          config: Optional[Path] = ConfigOpt,
          rubric: Optional[Path] = typer.Option(None, help="Rubric TOML (default: rubric.toml)."),
          max_batch: int = typer.Option(32, min=1, help="Requests per encoder call; 1 turns micro-batching off."),
          max_wait_ms: float = typer.Option(5.0, min=0.0, help="Longest a request waits for its batch to fill."),
          max_body_mb: float = typer.Option(8.0, min=0.01, help="Largest request body accepted (MiB)."),
          max_pixels: int = typer.Option(4096 * 4096, min=1, help="Largest image accepted (width x height), "
                                                                  "checked from the header before decoding.")) -> None:
    """Guard mode: judge outputs before delivery (POST /v1/verdicts).

    Uses the configured CLIP scorer and the rubric; bearer token from SENTINEL_GUARD_TOKEN (none
    required when unset); also /healthz, /metrics, /openapi.json."""
    settings = settings_from(config)
    setup_logging(settings.log_level)
    from config.rubric import load_rubric
    from config.settings import ConfigError
    from guard.app import GuardConfig
    from guard.server import serve, token_from_env

    try:
        loaded = load_rubric(rubric)
    except ConfigError as exc:
        console.print(f"[red]configuration error:[/] {exc}")
        raise typer.Exit(2) from None
    cfg = GuardConfig(host=host, port=port, token=token_from_env(), max_batch=max_batch, max_wait_ms=max_wait_ms,
                      max_body_bytes=int(max_body_mb * 1024 * 1024), max_pixels=max_pixels)
    console.print(f"guard on http://{host}:{port} (rubric {loaded.version}, scorer {settings.scorer_version}, "
                  f"max batch {max_batch}, max wait {max_wait_ms:g} ms, token {'required' if cfg.token else 'NOT set'})")
    serve(settings, loaded, cfg)
