"""`sentinel`: the one command-line entry point. Each command wires configuration to code
that lives elsewhere; no logic of its own."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import typer  # noqa: E402
from rich.console import Console  # noqa: E402

from config.settings import ConfigError, Settings, load_settings  # noqa: E402

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Sentinel Stream: score image-generation traffic from Kafka into ClickHouse.")
db_app = typer.Typer(no_args_is_help=True, help="Warehouse schema.")
app.add_typer(db_app, name="db")
trace_app = typer.Typer(no_args_is_help=True, help="Production-like traffic traces.")
app.add_typer(trace_app, name="trace")
dlq_app = typer.Typer(no_args_is_help=True, help="Dead-letter topics: what was rejected, and why.")
app.add_typer(dlq_app, name="dlq")
ratings_app = typer.Typer(no_args_is_help=True, help="Blind pairwise human ratings (A/B) for Bradley–Terry.")
app.add_typer(ratings_app, name="ratings")
reference_app = typer.Typer(no_args_is_help=True, help="Reference image sets per niche (FID/CMMD baselines).")
app.add_typer(reference_app, name="reference")
console = Console(stderr=True)

ConfigOpt = typer.Option(None, "--config", help="TOML file with settings (also SENTINEL_CONFIG).")
PricingOpt = typer.Option(None, "--pricing", help="Pricing TOML for cost per image (default: pricing.toml; "
                                                  "also SENTINEL_PRICING_FILE).")


def _settings(config: Optional[Path], **overrides) -> Settings:
    try:
        return load_settings(config, **overrides)
    except ConfigError as exc:
        console.print(f"[red]configuration error:[/] {exc}")
        raise typer.Exit(2) from None


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _parse_time(value: Optional[str], default: datetime) -> datetime:
    if not value:
        return default
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO-8601 time (e.g. 2026-01-01 or 2026-01-01T12:00:00Z)")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@app.command()
def worker(config: Optional[Path] = ConfigOpt, pricing: Optional[Path] = PricingOpt) -> None:
    """Run one Faust worker: score jobs.completed, tally, store everything in ClickHouse."""
    settings = _settings(config, pricing_file=pricing)
    _logging(settings.log_level)
    from worker.main import run_worker

    run_worker(settings)


@app.command()
def up(config: Optional[Path] = ConfigOpt, pricing: Optional[Path] = PricingOpt,
       broker: str = typer.Option("noida", help="Embedded broker kind: noida (default) or tansu.")) -> None:
    """Start the embedded stack (broker + one worker + chDB) and keep it running until Ctrl-C."""
    settings = _settings(config, pricing_file=pricing)
    from devstack.stack import EmbeddedStack
    from warehouse.client import redact

    stack = EmbeddedStack(settings, broker_kind=broker)
    console.print("starting embedded broker and worker ...")
    stack.start()
    s = stack.settings
    console.print(f"[green]up[/]: broker {s.broker_url}, worker {stack.worker.url}, warehouse {redact(s.dsn)}\n"
                  f"use it from another shell with:\n  export SENTINEL_BROKER_URL={s.broker_url} "
                  f"SENTINEL_DATA_DIR={s.data_dir}\nCtrl-C stops everything.")
    try:
        while stack.worker.proc and stack.worker.proc.poll() is None:
            time.sleep(1)
        console.print(f"[red]worker exited[/]:\n{stack.worker.log_tail()}")
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()


@app.command()
def node(model: list[str] = typer.Option(..., "--model", "-m", help="Model id(s) from the registry to serve."),
         jobs: int = typer.Option(100, help="Number of demo jobs to run and publish."),
         seed: int = typer.Option(0, help="Seed of the demo traffic (prompts, image seeds, job ids)."),
         node_id: str = typer.Option("", help="Node id recorded on every event (default: host-pid)."),
         image_format: str = typer.Option("webp", help="webp, png or jpeg."),
         registry: Optional[Path] = typer.Option(None, help="Model registry TOML (default: models.toml)."),
         config: Optional[Path] = ConfigOpt) -> None:
    """Run an inference node on demo traffic and publish JobCompleted events."""
    settings = _settings(config)
    from tqdm import tqdm

    from inference.node import InferenceNode
    from inference.publisher import JobPublisher
    from inference.registry import RegistryError, load_registry
    from inference.runner import serve
    from inference.traffic import demo_jobs
    from config.settings import PROJECT_ROOT

    try:
        models = load_registry(registry or Path(settings.model_registry or PROJECT_ROOT / "models.toml"))
    except RegistryError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    unknown = sorted(set(model) - set(models))
    if unknown:
        console.print(f"[red]unknown model(s) {unknown}[/]; the registry has {sorted(models)}")
        raise typer.Exit(2)
    inference_node = InferenceNode({m: models[m] for m in model}, node_id=node_id or f"{os.uname().nodename}-{os.getpid()}",
                                   cache_dir=settings.models_dir, image_format=image_format,
                                   max_image_bytes=settings.max_image_bytes)
    bar = tqdm(total=jobs, desc=f"node {','.join(model)}", unit="job", file=sys.stderr)

    async def main() -> int:
        async with JobPublisher(settings.bootstrap_servers) as publisher:
            return await serve(inference_node, publisher, demo_jobs(model, jobs, seed=seed),
                               on_published=lambda _: bar.update())

    published = asyncio.run(main())
    bar.close()
    console.print(f"published {published} jobs to {settings.broker_url}")


@app.command()
def sql(query: str = typer.Argument(..., help="A read-only ClickHouse query."),
        fmt: str = typer.Option("table", "--format", "-f", help="table, csv or json."),
        config: Optional[Path] = ConfigOpt) -> None:
    """Run an ad hoc read-only query (works while the embedded worker runs)."""
    settings = _settings(config)
    from warehouse.client import open_reader

    try:
        reader = open_reader(settings.dsn)
        table = reader.query(query)
    except Exception as exc:  # WarehouseError or the driver's own error: both carry a clear message
        console.print(f"[red]query failed:[/] {exc}")
        raise typer.Exit(1) from None
    _print_table(table, fmt)


def _print_table(table, fmt: str) -> None:
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


@app.command()
def report(start: Optional[str] = typer.Option(None, "--from", help="Window start (ISO-8601, UTC default)."),
           end: Optional[str] = typer.Option(None, "--to", help="Window end, exclusive."),
           quarter: Optional[str] = typer.Option(None, "--quarter", help="A calendar quarter, e.g. 2026Q1 "
                                                                       "(instead of --from/--to)."),
           fmt: str = typer.Option("table", "--format", "-f", help="table, json, csv, markdown or html."),
           output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file."),
           scorer_version: str = typer.Option("", help="Scorer version to report (default: latest per job)."),
           pricing: Optional[Path] = PricingOpt,
           config: Optional[Path] = ConfigOpt) -> None:
    """The benchmark: per model (and niche) jobs, CLIP, p50/p95 latency, cost per image."""
    settings = _settings(config, pricing_file=pricing)
    from sentinel.cost import PricingError
    from reports import report as reports
    from warehouse.window import EPOCH, FAR_FUTURE, Window
    from warehouse.client import WarehouseError, open_reader

    if quarter and (start or end):
        raise typer.BadParameter("use --quarter or --from/--to, not both")
    try:
        window = Window.quarter(quarter) if quarter else \
            Window(_parse_time(start, EPOCH), _parse_time(end, FAR_FUTURE))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        data = reports.benchmark(open_reader(settings.dsn), settings.pricing(), window, scorer_version,
                                 settings.quality_config(), settings.bootstrap_config())
    except (PricingError, ConfigError, WarehouseError) as exc:
        console.print(f"[red]report failed:[/] {exc}")
        raise typer.Exit(1) from None
    _emit_report(data, fmt, output)


def _emit_report(data: dict, fmt: str, output: Optional[Path]) -> None:
    from reports import report as reports
    from warehouse.window import EPOCH, FAR_FUTURE, Window

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


@app.command()
def alerts(open_only: bool = typer.Option(False, "--open", help="Only incidents still firing."),
           start: Optional[str] = typer.Option(None, "--from", help="Window start (ISO-8601, UTC default)."),
           end: Optional[str] = typer.Option(None, "--to", help="Window end, exclusive."),
           fmt: str = typer.Option("table", "--format", "-f", help="table, csv or json."),
           config: Optional[Path] = ConfigOpt) -> None:
    """List current and past quality-drift incidents (firing and resolved)."""
    settings = _settings(config)
    import sql as sql_files
    from reports import report as reports
    from warehouse.window import EPOCH, FAR_FUTURE, Window
    from warehouse.client import WarehouseError, open_reader

    window = Window(_parse_time(start, EPOCH), _parse_time(end, FAR_FUTURE))
    try:
        table = open_reader(settings.dsn).query(sql_files.report("alerts"),
                                                {**window.params(), "only_open": int(open_only)})
    except WarehouseError as exc:
        console.print(f"[red]alerts failed:[/] {exc}")
        raise typer.Exit(1) from None
    _print_table(table, fmt)


@trace_app.command("generate")
def trace_generate(output: Path = typer.Argument(..., help="Trace file to write (.jsonl or .parquet)."),
                   jobs: int = typer.Option(12_000, "--jobs", "-n", help="Number of jobs."),
                   days: float = typer.Option(91.0, help="Length of the window (default: a quarter)."),
                   start: Optional[str] = typer.Option(None, help="Window start, ISO-8601 (default 2026-01-01Z)."),
                   seed: int = typer.Option(0, help="Same seed, same trace.")) -> None:
    """Write a production-like trace: 8 models (2 API-priced), 3 niches, diurnal + bursty arrivals."""
    from inference.trace import generate_trace, write_trace

    rows = generate_trace(jobs, seed=seed, days=days, start=_parse_time(start, None) if start else None)
    write_trace(rows, output)
    console.print(f"wrote {len(rows):,} jobs to {output}")


@app.command()
def replay(trace: Path = typer.Argument(..., help="Trace file (.jsonl or .parquet)."),
           live: bool = typer.Option(False, "--live/--as-recorded",
                                     help="--as-recorded (default): publish the trace's timings and costs with images "
                                          "generated from each row's seed; --live: send the jobs to inference nodes "
                                          "and measure real timings."),
           speedup: float = typer.Option(60.0, help="Live: compress the trace's arrival times by this factor."),
           rate: Optional[float] = typer.Option(None, help="Live: submit at this many jobs/s instead (load test)."),
           nodes: int = typer.Option(2, help="Live: inference nodes working the queue."),
           image_size: Optional[int] = typer.Option(None, help="As recorded: image size (default: the registry's)."),
           steps: Optional[int] = typer.Option(None, help="As recorded: denoising steps (default: the registry's)."),
           limit: Optional[int] = typer.Option(None, help="Replay only the first N valid rows."),
           registry: Optional[Path] = typer.Option(None, help="Model registry TOML (default: models.toml)."),
           config: Optional[Path] = ConfigOpt) -> None:
    """Replay a trace into jobs.completed; prints rejected rows by line number."""
    settings = _settings(config)
    from tqdm import tqdm

    from inference.node import InferenceNode
    from inference.publisher import JobPublisher
    from inference.registry import load_registry
    from inference.replay import AsRecordedRenderer, live_rejects, replay_as_recorded, replay_live
    from inference.trace import load_trace
    from config.settings import PROJECT_ROOT

    models = load_registry(registry or Path(settings.model_registry or PROJECT_ROOT / "models.toml"))
    rows, errors = load_trace(trace)
    if live:
        rows, more = live_rejects(rows, models)
        errors += more
    for err in errors:
        console.print(f"[yellow]rejected[/] line {err.line}: {err.reason}")
    rows = rows[:limit] if limit else rows
    bar = tqdm(total=len(rows), desc="replay", unit="job", file=sys.stderr)

    async def main():
        async with JobPublisher(settings.bootstrap_servers) as publisher:
            if live:
                pool = [InferenceNode(models, node_id=f"live-node-{i}", cache_dir=settings.models_dir,
                                      max_image_bytes=settings.max_image_bytes) for i in range(nodes)]
                return await replay_live(rows, pool, publisher, speedup=speedup, rate=rate,
                                         on_published=lambda _: bar.update())
            renderer = AsRecordedRenderer(models, settings.models_dir, size=image_size, steps=steps)
            return await replay_as_recorded(rows, renderer, publisher, on_published=lambda _: bar.update())

    result = asyncio.run(main())
    bar.close()
    result.rejected = errors
    if result.stand_ins:
        console.print(f"[yellow]warning:[/] no pipeline for {result.stand_ins} in the registry: replayed with "
                      "deterministic tiny stand-ins (placeholder images; the trace's timings and costs are kept)")
    summary = f"published {result.published:,} jobs in {result.seconds:.1f}s ({result.throughput:.1f} jobs/s)"
    if live and result.p95_latency_ms is not None:
        summary += f"; measured p95 end-to-end latency {result.p95_latency_ms:,.0f} ms"
    console.print(summary + (f"; rejected {len(errors)} rows" if errors else ""))


@dlq_app.command("list")
def dlq_list(topic: str = typer.Option("jobs.completed.dlq", help="Dead-letter topic."),
             reason: Optional[str] = typer.Option(None, help="Only this reason."),
             fmt: str = typer.Option("table", "--format", "-f", help="table, csv or json."),
             config: Optional[Path] = ConfigOpt) -> None:
    """List dead letters with their reason, error and source offsets."""
    settings = _settings(config)
    import pyarrow as pa

    from worker.dlq import read_dead_letters

    letters = [d for d in asyncio.run(read_dead_letters(settings.bootstrap_servers, topic))
               if reason is None or d.reason == reason]
    _print_table(pa.Table.from_pylist([d.summary() for d in letters]) if letters else pa.table({"dlq_offset": []}), fmt)


@dlq_app.command("replay")
def dlq_replay(topic: str = typer.Option("jobs.completed.dlq", help="Dead-letter topic."),
               reason: Optional[str] = typer.Option(None, help="Only this reason."),
               config: Optional[Path] = ConfigOpt) -> None:
    """Send dead letters back to their source topic (e.g. after fixing pricing or a schema)."""
    settings = _settings(config)
    from worker.dlq import read_dead_letters, replay_dead_letters

    letters = [d for d in asyncio.run(read_dead_letters(settings.bootstrap_servers, topic))
               if reason is None or d.reason == reason]
    n = asyncio.run(replay_dead_letters(settings.bootstrap_servers, letters))
    console.print(f"replayed {n} records from {topic}")


@app.command()
def rescore(scorer_version: str = typer.Option("", help="Version to write the new scores under, e.g. v2 (the extractor "
                                                         "is appended: v2/<arch>:<weights>); default: the configured "
                                                         "scorer's version."),
            start: Optional[str] = typer.Option(None, "--from", help="Jobs requested from (ISO-8601, UTC default); "
                                                                    "widened to the FID bucket start."),
            end: Optional[str] = typer.Option(None, "--to", help="Jobs requested before (exclusive); widened to a bucket end."),
            config: Optional[Path] = ConfigOpt) -> None:
    """Score stored jobs again with the configured scorer and store them under a new version
    (scores and FID moments); history under other versions stays. Reports pick a version with
    --scorer-version."""
    settings = _settings(config)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    import sql as sql_files
    from sentinel.clip import ClipExtractor
    from sentinel.scoring import BatchScorer
    from reports import report as reports
    from warehouse.window import EPOCH, FAR_FUTURE, Window
    from worker.rescore import rescore as run_rescore
    from warehouse.client import ClickHouseWarehouse, WarehouseError, live_owner, migrate

    if settings.chdb_path and live_owner(settings.chdb_path):
        console.print("[red]a running worker owns this embedded store[/]: stop it to rescore "
                      "(with a ClickHouse server, rescoring runs beside the workers)")
        raise typer.Exit(1)
    # a version names its extractor after the "/" (reference sets are matched on it)
    extractor = settings.clip_spec.version
    version = (scorer_version if "/" in scorer_version else f"{scorer_version}/{extractor}") if scorer_version \
        else settings.scorer_version
    t0, t1 = _parse_time(start, EPOCH), _parse_time(end, FAR_FUTURE)
    try:
        warehouse = ClickHouseWarehouse(settings.dsn)
        migrate(warehouse)
        window = Window(t0, t1).params()
        total = warehouse.query(sql_files.report("rescore_count"), window).to_pylist()[0]["jobs"]
        scorer = BatchScorer(ClipExtractor(settings.clip_spec))
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            task = progress.add_task(f"rescoring as {version}", total=total)
            result = run_rescore(warehouse, scorer, version, t0, t1, bucket_s=settings.moments_bucket_s,
                                 progress=lambda k: progress.advance(task, k))
        warehouse.close()
    except WarehouseError as exc:
        console.print(f"[red]rescore failed:[/] {exc}")
        raise typer.Exit(1) from None
    for job_id, reason in result.skipped[:20]:
        console.print(f"[yellow]skipped[/] {job_id}: {reason}")
    console.print(f"rescored {result.scored} jobs as {version} ({len(result.skipped)} skipped), "
                  f"{result.states} FID moment states, window {result.window[0].isoformat()} → {result.window[1].isoformat()}")


@reference_app.command("build")
def reference_build(niche: str = typer.Argument(..., help="Niche the images represent (e.g. headshot)."),
                    directory: Path = typer.Argument(..., help="Directory of real images of the niche (png/jpg/webp)."),
                    seed: int = typer.Option(0, help="Seed of the half/half split and the noise anchor images."),
                    config: Optional[Path] = ConfigOpt) -> None:
    """Embed a niche's reference images with the scorer's extractor and store their FID moments,
    embeddings (for CMMD) and FID anchors; replaces the niche's previous set for this extractor."""
    settings = _settings(config)
    from rich.progress import Progress

    from sentinel.clip import ClipExtractor
    from warehouse import references
    from warehouse.client import ClickHouseWarehouse, WarehouseError, live_owner, migrate

    if settings.chdb_path and live_owner(settings.chdb_path):
        console.print("[red]a running worker owns this embedded store[/]: stop it, build references, start it again")
        raise typer.Exit(1)
    try:
        files = references.image_files(directory)
        extractor = ClipExtractor(settings.clip_spec)
        name = references.extractor_id(settings.scorer_version)
        with Progress(console=console) as progress:
            task = progress.add_task(f"embedding {len(files)} {niche} images", total=len(files))
            stats = references.build_from_dir(niche, directory, extractor, name, seed=seed,
                                              progress=lambda k: progress.advance(task, k))
        warehouse = ClickHouseWarehouse(settings.dsn)
        migrate(warehouse)
        references.store(warehouse, stats, source=str(directory.resolve()))
        warehouse.close()
    except (references.ReferenceError, WarehouseError) as exc:
        console.print(f"[red]reference build failed:[/] {exc}")
        raise typer.Exit(1) from None
    console.print(f"reference set {niche!r} for {name}: {stats.n} images, FID anchors best {stats.fid_best:.4g} "
                  f"(half vs half), worst {stats.fid_worst:.4g} (noise)")


@reference_app.command("list")
def reference_list(config: Optional[Path] = ConfigOpt) -> None:
    """Reference sets stored for the configured extractor."""
    settings = _settings(config)
    from warehouse.references import extractor_id, load_references
    from warehouse.client import WarehouseError, open_reader

    name = extractor_id(settings.scorer_version)
    try:
        refs = load_references(open_reader(settings.dsn), name)
    except WarehouseError as exc:
        console.print(f"[red]cannot read reference sets:[/] {exc}")
        raise typer.Exit(1) from None
    if not refs:
        console.print(f"no reference sets for extractor {name}")
    for niche, r in refs.items():
        Console().print(f"{niche}: {r.n} images, fid_best {r.fid_best:.4g}, fid_worst {r.fid_worst:.4g} ({name})")


@ratings_app.command("import")
def ratings_import(file: Path = typer.Argument(..., help="JSON Lines, one rating per line: rating_id, job_a, job_b, "
                                                     "winner (a, b or tie), rater, time (ISO-8601 UTC or epoch ms)."),
                   skip_invalid: bool = typer.Option(False, "--skip-invalid",
                                                     help="Publish the valid lines even if some are invalid (default: "
                                                          "publish nothing when any line is invalid)."),
                   config: Optional[Path] = ConfigOpt) -> None:
    """Validate a ratings file and publish it to ratings.pairwise; the worker stores each rating_id once."""
    settings = _settings(config)
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


@ratings_app.command("list")
def ratings_list(fmt: str = typer.Option("table", "--format", "-f", help="table, csv or json."),
                 config: Optional[Path] = ConfigOpt) -> None:
    """Stored ratings per rater: count, winners, time range, and ratings naming a job not stored."""
    settings = _settings(config)
    import sql as sql_files
    from warehouse.client import WarehouseError, open_reader

    try:
        table = open_reader(settings.dsn).query(sql_files.report("ratings_summary"))
    except WarehouseError as exc:
        console.print(f"[red]ratings list failed:[/] {exc}")
        raise typer.Exit(1) from None
    _print_table(table, fmt)


@ratings_app.command("url")
def ratings_url(rater: str = typer.Option("anonymous", help="Rater id to put in the link."),
                config: Optional[Path] = ConfigOpt) -> None:
    """Print the link to the running worker's blind A/B rating page, with a rater token (opens the
    page, not the SQL view)."""
    settings = _settings(config)
    from urllib.parse import urlencode

    from warehouse.client import live_owner

    owner = live_owner(settings.chdb_path) if settings.chdb_path else None
    base, token = (owner.url, owner.token) if owner else (f"http://{settings.web_host}:{settings.web_port}",
                                                          os.environ.get("SENTINEL_QUERY_TOKEN", ""))
    if not token:
        console.print("[red]no token:[/] no running worker owns the embedded store, and SENTINEL_QUERY_TOKEN is not set")
        raise typer.Exit(1)
    from worker.ratings import rater_token

    typer.echo(f"{base}/sentinel/rate/?{urlencode({'token': rater_token(token), 'rater': rater})}")


@db_app.command("migrate")
def db_migrate(config: Optional[Path] = ConfigOpt) -> None:
    """Apply pending ClickHouse migrations from sql/migrations (idempotent)."""
    settings = _settings(config)
    from warehouse.client import ClickHouseWarehouse, live_owner, migrate

    if settings.chdb_path and live_owner(settings.chdb_path):
        console.print("a running worker owns this store and has migrated it at start; nothing to do")
        return
    warehouse = ClickHouseWarehouse(settings.dsn)
    applied = migrate(warehouse)
    warehouse.close()
    console.print(f"applied {applied}" if applied else "schema up to date")


@app.command()
def demo(jobs: int = typer.Option(300, help="Jobs to generate, spread over the registry's models and 3 niches."),
         data_dir: Path = typer.Option(Path(".sentinel/demo"), help="Fresh data directory (wiped first)."),
         html_out: Path = typer.Option(Path("sentinel-demo-report.html"), "--html", help="Where to write the HTML report."),
         timeout: float = typer.Option(600, help="Seconds to wait for all jobs to be scored and stored."),
         reference_images: int = typer.Option(32, help="Synthetic reference images per niche (FID/CMMD baseline)."),
         pricing: Optional[Path] = PricingOpt,
         config: Optional[Path] = ConfigOpt) -> None:
    """Run the whole pipeline on the embedded stack and print the benchmark."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    import sql as sql_files
    from inference.registry import load_registry
    from reports import report as reports
    from warehouse.window import EPOCH, FAR_FUTURE, Window
    from config.settings import PROJECT_ROOT
    from devstack.stack import CHILD_ENV, EmbeddedStack
    from warehouse.client import open_reader, redact

    settings = _settings(config, data_dir=data_dir, pricing_file=pricing)
    models = sorted(load_registry(Path(settings.model_registry or PROJECT_ROOT / "models.toml")))
    if data_dir.exists():
        shutil.rmtree(data_dir)
    console.rule("Sentinel Stream demo")
    t0 = time.monotonic()
    _demo_references(settings, reference_images)
    console.print("2/5 starting the embedded broker (noida-db), a Faust worker and chDB ...")
    with EmbeddedStack(settings) as stack:
        s = stack.settings
        console.print(f"    broker {s.broker_url}, worker {stack.worker.url}, warehouse {redact(s.dsn)} "
                      f"({time.monotonic() - t0:.1f}s)")
        console.print(f"3/5 {len(models)} inference nodes ({', '.join(models)}) generate {jobs} jobs on tiny offline pipelines")
        per_model = [jobs // len(models) + (1 if i < jobs % len(models) else 0) for i in range(len(models))]
        env = {**os.environ, **s.to_env(), **CHILD_ENV}
        logs = s.data_dir / "logs"
        nodes = []
        for i, (model, n) in enumerate(zip(models, per_model)):
            log_file = (logs / f"node-{model}.log").open("wb")
            nodes.append((model, subprocess.Popen(
                [sys.executable, "-m", "cli.main", "node", "--model", model, "--jobs", str(n), "--seed", str(i),
                 "--node-id", f"demo-node-{i}"], env=env, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True), log_file))
        reader = open_reader(s.dsn)
        deadline = time.monotonic() + timeout
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        try:
            with Progress(*columns, console=console) as progress:
                stored = progress.add_task("    stored in ClickHouse", total=jobs)
                scored = progress.add_task("    scored (CLIP)       ", total=jobs)
                while True:
                    row = reader.query(sql_files.report("progress")).to_pylist()[0]
                    progress.update(stored, completed=row["jobs"])
                    progress.update(scored, completed=row["scored"])
                    if row["jobs"] >= jobs and row["scored"] >= jobs:
                        break
                    failed = [(m, p) for m, p, _ in nodes if p.poll() not in (None, 0)]
                    if failed or stack.worker.proc.poll() is not None or time.monotonic() > deadline:
                        why = (f"node {failed[0][0]} exited with {failed[0][1].returncode}; see {logs}" if failed else
                               f"worker exited:\n{stack.worker.log_tail()}" if stack.worker.proc.poll() is not None
                               else f"timed out after {timeout:.0f}s; logs in {logs}")
                        console.print(f"[red]demo failed:[/] {why}")
                        raise typer.Exit(1)
                    time.sleep(0.5)
        finally:
            for _, proc, log_file in nodes:
                if proc.poll() is None:
                    proc.terminate()
                proc.wait()
                log_file.close()
        _demo_ratings(s, reader, models, timeout)
        console.print("5/5 report (queried through the worker that owns the chDB store)")
        data = reports.benchmark(reader, s.pricing(), Window(), "", s.quality_config(),
                                 s.bootstrap_config())
        reports.render_terminal(data, Console())
        html_out.write_text(reports.render_html(data))
        console.print(f"HTML report: {html_out.resolve()}")
    console.print(f"[green]done[/] in {time.monotonic() - t0:.0f}s; broker and worker stopped. "
                  "Scores come from random-weight stand-in models, synthetic reference sets and simulated raters: "
                  "they prove the pipeline, not image quality.")


DEMO_STRENGTHS_SPREAD = 0.6  # planted Bradley–Terry log-strengths of the simulated raters: +0.6 ... -0.6


def _demo_references(settings: Settings, per_niche: int) -> None:
    """Step 1: synthetic reference images per niche, then `sentinel reference build` for each
    (in a child process: the worker will own the embedded store afterwards)."""
    from rich.progress import Progress

    from inference.reference_images import generate_reference_images
    from inference.traffic import NICHES
    from devstack.stack import CHILD_ENV

    console.print(f"1/5 reference sets: {per_niche} SYNTHETIC images per niche from a stand-in 'reference camera' "
                  "pipeline, embedded for FID/CMMD ...")
    root = settings.data_dir / "reference"
    with Progress(console=console) as progress:
        task = progress.add_task("    rendering", total=per_niche * len(NICHES))
        for niche in NICHES:
            generate_reference_images(root / niche, niche, per_niche, settings.models_dir,
                                      progress=lambda k: progress.advance(task, k))
    env = {**os.environ, **settings.with_(data_dir=settings.data_dir.resolve()).to_env(), **CHILD_ENV}
    for niche in NICHES:
        done = subprocess.run([sys.executable, "-m", "cli.main", "reference", "build", niche, str(root / niche)],
                              env=env, capture_output=True, text=True)
        if done.returncode != 0:
            console.print(f"[red]demo failed:[/] reference build for {niche}:\n{done.stderr[-2000:]}")
            raise typer.Exit(1)
        console.print("    " + done.stderr.strip().splitlines()[-1])


def _demo_ratings(settings: Settings, reader, models: list[str], timeout: float) -> None:
    """Step 4: SIMULATED blind pairwise ratings of stored job pairs (same prompt and niche), from
    planted strengths, published to ratings.pairwise and stored by the worker."""
    import asyncio

    import numpy as np

    import sql as sql_files
    from inference.raters import simulate_ratings
    from inference.ratings import parse_rating, publish_ratings

    strengths = dict(zip(models, np.linspace(DEMO_STRENGTHS_SPREAD, -DEMO_STRENGTHS_SPREAD, len(models)).tolist()))
    candidates = reader.query(sql_files.report("rating_candidates"), {
        "seed": 0, "per_group": 6, "per_model_pair": 120, "exclude": []}).to_pylist()
    pairs = [(c["job_1"], c["job_2"], c["model_1"], c["model_2"]) for c in candidates]
    rows = simulate_ratings(pairs, strengths, ratings_per_pair=2, seed=0)
    console.print(f"4/5 {len(rows)} SIMULATED pairwise ratings of {len(pairs)} job pairs (planted strengths "
                  + ", ".join(f"{m} {t:+.2f}" for m, t in strengths.items()) + ")")
    asyncio.run(publish_ratings(settings.bootstrap_servers, [parse_rating(r) for r in rows]))
    deadline = time.monotonic() + timeout
    while reader.query(sql_files.report("progress")).to_pylist()[0]["ratings"] < len(rows):
        if time.monotonic() > deadline:
            console.print("[red]demo failed:[/] ratings were not stored in time")
            raise typer.Exit(1)
        time.sleep(0.5)


if __name__ == "__main__":
    app()
