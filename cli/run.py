"""Running the pipeline: a worker, the embedded stack, an inference node."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from cli.common import ConfigOpt, PricingOpt, broker_errors, console, registry_path, settings_from, setup_logging
from cli.guarding import GuardOpt, GuardTimeoutOpt, MaxAttemptsOpt, PlantBadOpt, guard_summary, guarded, plant


def worker(config: Optional[Path] = ConfigOpt, pricing: Optional[Path] = PricingOpt) -> None:
    """Run one Faust worker: score jobs.completed, tally, store everything in ClickHouse."""
    settings = settings_from(config, pricing_file=pricing)
    setup_logging(settings.log_level)
    from reports.snapshots import take_due
    from worker.main import run_worker

    run_worker(settings, snapshot=take_due)


def store(config: Optional[Path] = ConfigOpt, pricing: Optional[Path] = PricingOpt) -> None:
    """Run the store role: own the warehouse (migrations, prices, snapshots) and, for embedded chDB,
    serve the workers' reads and writes on SENTINEL_STORE_PORT, so several workers can share it."""
    settings = settings_from(config, pricing_file=pricing)
    setup_logging(settings.log_level)
    from reports.snapshots import take_due
    from warehouse.client import WarehouseError
    from worker.store_role import run_store

    try:
        run_store(settings, snapshot=take_due)
    except WarehouseError as exc:
        console.print(f"[red]sentinel store failed:[/] {escape(str(exc))}")
        raise typer.Exit(1) from None


def up(config: Optional[Path] = ConfigOpt, pricing: Optional[Path] = PricingOpt,
       broker: str = typer.Option("noida", help="Embedded broker kind: noida (default) or tansu (evicts a dead "
                                                "worker, but keeps nothing across restarts; docs/scale-out.md)."),
       workers: int = typer.Option(1, min=1, help="Worker processes sharing the partitions; above 1 a store "
                                                  "role owns the embedded warehouse (docs/scale-out.md).")) -> None:
    """Start the embedded stack (broker + workers + chDB) on the configured ports
    (SENTINEL_BROKER_URL, SENTINEL_WEB_PORT, SENTINEL_STORE_PORT; 0 = a free port) until Ctrl-C,
    SIGTERM or SIGHUP."""
    settings = settings_from(config, pricing_file=pricing)
    from devstack.broker import BrokerError
    from devstack.discovery import stack_file
    from devstack.process_group import stop_signals
    from devstack.stack import EmbeddedStack, StackError
    from warehouse.client import redact

    with stop_signals():
        try:
            if broker == "noida" and workers > 1:
                console.print("[yellow]noida-db never evicts a worker that died: restart a dead worker under its own id "
                              "(static membership) to get its partitions back (docs/scale-out.md)[/]")
            stack = EmbeddedStack(settings, broker_kind=broker, configured_ports=True, workers=workers)
            console.print(f"starting embedded broker and {workers} worker(s) ...")
            stack.start()
        except (StackError, BrokerError) as exc:
            console.print(f"[red]sentinel up failed:[/] {escape(str(exc))}")
            raise typer.Exit(1) from None
        try:
            s = stack.settings
            urls = ", ".join(w.url for w in stack.workers)
            store_line = f", store {stack.store.url}" if stack.store else ""
            console.print(f"[green]up[/]: broker {s.broker_url}, worker(s) {urls}{store_line}, warehouse {redact(s.dsn)}\n"
                          f"commands run with SENTINEL_DATA_DIR={s.data_dir} find it through {stack_file(s.data_dir)}\n"
                          "Ctrl-C (or SIGTERM) stops everything.")
            while all(p.alive() for p in [*stack.workers, *([stack.store] if stack.store else [])]):
                time.sleep(1)
            dead = next(p for p in [*stack.workers, stack.store] if p is not None and not p.alive())
            console.print(f"[red]{dead.what} exited[/]:\n{escape(dead.log_tail())}")
            raise typer.Exit(1)
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM/SIGHUP through stop_signals
            console.print("stopping ...")
        finally:
            stack.stop()


def node(model: list[str] = typer.Option(..., "--model", "-m", help="Model id(s) from the registry to serve."),
         jobs: int = typer.Option(100, help="Number of demo jobs to run and publish."),
         seed: int = typer.Option(0, help="Seed of the demo traffic (prompts, image seeds, job ids)."),
         node_id: str = typer.Option("", help="Node id recorded on every event (default: host-pid)."),
         image_format: str = typer.Option("webp", help="webp, png or jpeg."),
         registry: Optional[Path] = typer.Option(None, help="Model registry TOML (default: models.toml)."),
         guard: Optional[str] = GuardOpt, max_attempts: int = MaxAttemptsOpt, guard_timeout: float = GuardTimeoutOpt,
         plant_bad: float = PlantBadOpt, config: Optional[Path] = ConfigOpt) -> None:
    """Run an inference node on demo traffic and publish JobCompleted events (guarded: one per attempt)."""
    settings = settings_from(config, find_stack=True)
    from tqdm import tqdm

    from inference.node import InferenceNode
    from inference.publisher import JobPublisher
    from inference.registry import RegistryError, load_registry
    from inference.runner import serve
    from inference.traffic import demo_jobs
    from objects.store import ObjectStore

    try:
        models = load_registry(registry_path(settings, registry))
    except RegistryError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    unknown = sorted(set(model) - set(models))
    if unknown:
        console.print(f"[red]unknown model(s) {unknown}[/]; the registry has {sorted(models)}")
        raise typer.Exit(2)
    inference_node = InferenceNode({m: models[m] for m in model}, node_id=node_id or f"{os.uname().nodename}-{os.getpid()}",
                                   cache_dir=settings.models_dir, image_format=image_format,
                                   max_image_bytes=settings.max_image_bytes,
                                   objects=ObjectStore(settings.object_store_root), plant=plant(plant_bad))
    inference_node = guarded(inference_node, guard, max_attempts, guard_timeout)
    bar = tqdm(total=jobs, desc=f"node {','.join(model)}", unit="job", file=sys.stderr)

    async def main() -> int:
        async with JobPublisher(settings.bootstrap_servers) as publisher:
            return await serve(inference_node, publisher, demo_jobs(model, jobs, seed=seed),
                               on_published=lambda _: bar.update())

    with broker_errors(settings):  # outside the bar: its last line comes before the error
        try:
            published = asyncio.run(main())
        finally:
            bar.close()
    console.print(f"published {published} jobs to {settings.broker_url}{guard_summary(inference_node)}")
