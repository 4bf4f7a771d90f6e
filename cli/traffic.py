"""Traffic in and back: generate a trace, replay it into jobs.completed, list and replay dead letters."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Optional

import typer

from cli.common import ConfigOpt, broker_errors, console, parse_time, print_table, registry_path, settings_from
from cli.guarding import GuardOpt, GuardTimeoutOpt, MaxAttemptsOpt, PlantBadOpt, guarded, plant
from config.settings import Settings


def trace_generate(output: Path = typer.Argument(..., help="Trace file to write (.jsonl or .parquet)."),
                   jobs: int = typer.Option(12_000, "--jobs", "-n", help="Number of jobs."),
                   days: float = typer.Option(91.0, help="Length of the window (default: a quarter)."),
                   start: Optional[str] = typer.Option(None, help="Window start, ISO-8601 (default 2026-01-01Z)."),
                   seed: int = typer.Option(0, help="Same seed, same trace.")) -> None:
    """Write a production-like trace: 8 models (2 API-priced), 3 niches, diurnal + bursty arrivals."""
    from inference.trace import generate_trace, write_trace

    rows = generate_trace(jobs, seed=seed, days=days, start=parse_time(start, None) if start else None)
    write_trace(rows, output)
    console.print(f"wrote {len(rows):,} jobs to {output}")


RENDERS = ("seeded", "pipelines")


def replay(trace: Path = typer.Argument(..., help="Trace file (.jsonl or .parquet)."),
           live: bool = typer.Option(False, "--live/--as-recorded",
                                     help="--as-recorded (default): publish the trace's timings and costs with an image "
                                          "made from each row's seed; --live: send the jobs to inference nodes "
                                          "and measure real timings."),
           render: str = typer.Option("seeded", help="As recorded: 'seeded' (default) a small seeded gradient PNG per "
                                                     "row, thousands of jobs/s; 'pipelines' each model's diffusion "
                                                     "pipeline (or a tiny stand-in), a few jobs/s."),
           speedup: float = typer.Option(60.0, help="Live: compress the trace's arrival times by this factor."),
           rate: Optional[float] = typer.Option(None, help="Live: submit at this many jobs/s instead (load test)."),
           nodes: int = typer.Option(2, help="Live: inference nodes working the queue."),
           image_size: Optional[int] = typer.Option(None, help="As recorded: image size (default: 32 seeded, the "
                                                               "registry's with pipelines)."),
           steps: Optional[int] = typer.Option(None, help="As recorded with pipelines: denoising steps (default: the "
                                                          "registry's)."),
           limit: Optional[int] = typer.Option(None, help="Replay only the first N valid rows."),
           registry: Optional[Path] = typer.Option(None, help="Model registry TOML (default: models.toml)."),
           guard: Optional[str] = GuardOpt, max_attempts: int = MaxAttemptsOpt,
           guard_timeout: float = GuardTimeoutOpt, plant_bad: float = PlantBadOpt,
           config: Optional[Path] = ConfigOpt) -> None:
    """Replay a trace into jobs.completed; prints rejected rows by line number, and before publishing the
    models and niches the worker will refuse."""
    settings = settings_from(config, find_stack=True)
    if render not in RENDERS:
        raise typer.BadParameter(f"--render must be one of {', '.join(RENDERS)}, got {render!r}")
    if (guard or plant_bad) and not live:
        raise typer.BadParameter("--guard and --plant-bad need --live (as recorded, no image is generated)")
    from tqdm import tqdm

    from inference.catalog import row_jobs
    from inference.publisher import JobPublisher
    from inference.replay import live_rejects, replay_as_recorded, replay_live
    from inference.trace import load_trace

    rows, errors = load_trace(trace)
    models = _registry_models(settings, registry) if live or render == "pipelines" else {}
    if live:
        rows, more = live_rejects(rows, models)
        errors += more
    for err in errors:
        console.print(f"[yellow]rejected[/] line {err.line}: {err.reason}")
    rows = rows[:limit] if limit else rows
    _warn_refusals(settings, row_jobs(rows))
    bar = tqdm(total=len(rows), desc="replay", unit="job", file=sys.stderr)

    async def main():
        async with JobPublisher(settings.bootstrap_servers) as publisher:
            if live:
                from inference.node import InferenceNode
                from objects.store import ObjectStore

                pool = [guarded(InferenceNode(models, node_id=f"live-node-{i}", cache_dir=settings.models_dir,
                                              max_image_bytes=settings.max_image_bytes, plant=plant(plant_bad),
                                              objects=ObjectStore(settings.object_store_root)),
                                guard, max_attempts, guard_timeout) for i in range(nodes)]
                return await replay_live(rows, pool, publisher, speedup=speedup, rate=rate,
                                         on_published=lambda _: bar.update())
            renderer = _renderer(render, settings, models, image_size, steps)
            return await replay_as_recorded(rows, renderer, publisher, on_published=lambda _: bar.update())

    with broker_errors(settings):  # outside the bar: its last line comes before the error
        try:
            result = asyncio.run(main())
        finally:
            bar.close()
    result.rejected = errors
    if result.stand_ins:
        console.print(f"[yellow]warning:[/] no pipeline for {result.stand_ins} in the registry: replayed with "
                      "deterministic tiny stand-ins (placeholder images; the trace's timings and costs are kept)")
    summary = f"published {result.published:,} jobs in {result.seconds:.1f}s ({result.throughput:.1f} jobs/s)"
    if live and result.p95_latency_ms is not None:
        summary += f"; measured p95 end-to-end latency {result.p95_latency_ms:,.0f} ms"
    console.print(summary + (f"; rejected {len(errors)} rows" if errors else ""))


def _registry_models(settings: Settings, registry: Optional[Path]) -> dict:
    from inference.registry import load_registry  # imports torch and diffusers: only when pipelines run

    return load_registry(registry_path(settings, registry))


def _renderer(render: str, settings: Settings, models: dict, image_size: Optional[int], steps: Optional[int]):
    if render == "pipelines":
        from inference.pipeline_images import PipelineImages

        return PipelineImages(models, settings.models_dir, size=image_size, steps=steps)
    from inference.seeded_images import DEFAULT_SIZE, SeededImages

    return SeededImages(image_size or DEFAULT_SIZE)


def _warn_refusals(settings: Settings, jobs) -> None:
    """Before publishing: the (model id, niche) jobs the worker's catalog (same settings) will
    dead-letter, and how to accept them."""
    from inference.catalog import known_ids, refusals

    found = refusals(jobs, known_ids(registry_path(settings), settings.known_models, settings.known_niches))
    for message in found.messages():
        console.print(f"[yellow]warning:[/] {message}")


def dlq_list(topic: str = typer.Option("jobs.completed.dlq", help="Dead-letter topic."),
             reason: Optional[str] = typer.Option(None, help="Only this reason."),
             fmt: str = typer.Option("table", "--format", "-f", help="table, csv or json."),
             config: Optional[Path] = ConfigOpt) -> None:
    """List dead letters with their reason, error and source offsets."""
    settings = settings_from(config, find_stack=True)
    import pyarrow as pa

    letters = _dead_letters(settings, topic, reason)
    print_table(pa.Table.from_pylist([d.summary() for d in letters]) if letters else pa.table({"dlq_offset": []}), fmt)


def dlq_replay(topic: str = typer.Option("jobs.completed.dlq", help="Dead-letter topic."),
               reason: Optional[str] = typer.Option(None, help="Only this reason."),
               config: Optional[Path] = ConfigOpt) -> None:
    """Send dead letters back to their source topic (e.g. after fixing pricing or a schema)."""
    settings = settings_from(config, find_stack=True)
    from worker.dlq import replay_dead_letters

    letters = _dead_letters(settings, topic, reason)
    _warn_refusals(settings, _catalog_jobs(letters))
    with broker_errors(settings):
        n = asyncio.run(replay_dead_letters(settings.bootstrap_servers, letters))
    console.print(f"replayed {n} records from {topic}")


CATALOG_REASONS = ("unknown_model", "unknown_niche")


def _catalog_jobs(letters: list) -> list[tuple[str, str]]:
    """(model id, niche) of the letters refused by the catalog: sent back, they are judged again."""
    from contracts.codec import AvroCodec
    from contracts.errors import DecodeError

    codec = AvroCodec("JobCompleted")
    jobs = []
    for letter in letters:
        if letter.reason in CATALOG_REASONS:
            try:
                event = codec.decode(letter.value)
            except DecodeError:  # e.g. a schema only the worker knows: it decoded this, we cannot tell
                continue
            jobs.append((event["model_id"], event["niche"]))
    return jobs


def _dead_letters(settings: Settings, topic: str, reason: Optional[str]) -> list:
    """The dead letters on ``topic``, only those with ``reason`` if given."""
    from worker.dlq import read_dead_letters

    with broker_errors(settings):
        letters = asyncio.run(read_dead_letters(settings.bootstrap_servers, topic))
    return [d for d in letters if reason is None or d.reason == reason]
