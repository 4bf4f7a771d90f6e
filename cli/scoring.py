"""Scoring stored data: rescore jobs under a new scorer version, build and list reference sets."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from cli.common import ConfigOpt, console, counting_progress, parse_time, settings_from


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
    settings = settings_from(config)
    import sql as sql_files
    from sentinel.clip import ClipExtractor
    from sentinel.scoring import BatchScorer
    from warehouse.window import EPOCH, FAR_FUTURE, Window
    from objects.store import ObjectStore
    from worker.rescore import rescore as run_rescore
    from warehouse.client import ClickHouseWarehouse, WarehouseError, migrate
    from warehouse.owner import live_owner

    if settings.chdb_path and live_owner(settings.chdb_path):
        console.print("[red]a running worker owns this embedded store[/]: stop it to rescore "
                      "(with a ClickHouse server, rescoring runs beside the workers)")
        raise typer.Exit(1)
    # a version names its extractor after the "/" (reference sets are matched on it)
    extractor = settings.clip_spec.version
    version = (scorer_version if "/" in scorer_version else f"{scorer_version}/{extractor}") if scorer_version \
        else settings.scorer_version
    t0, t1 = parse_time(start, EPOCH), parse_time(end, FAR_FUTURE)
    try:
        warehouse = ClickHouseWarehouse(settings.dsn)
        migrate(warehouse)
        window = Window(t0, t1).params()
        total = warehouse.query(sql_files.report("rescore_count"), window).to_pylist()[0]["jobs"]
        scorer = BatchScorer(ClipExtractor(settings.clip_spec))
        with counting_progress() as progress:
            task = progress.add_task(f"rescoring as {version}", total=total)
            result = run_rescore(warehouse, scorer, version, t0, t1, bucket_s=settings.moments_bucket_s,
                                 progress=lambda k: progress.advance(task, k),
                                 objects=ObjectStore(settings.object_store_root))
        warehouse.close()
    except WarehouseError as exc:
        console.print(f"[red]rescore failed:[/] {exc}")
        raise typer.Exit(1) from None
    for job_id, reason in result.skipped[:20]:
        console.print(f"[yellow]skipped[/] {job_id}: {reason}")
    console.print(f"rescored {result.scored} jobs as {version} ({len(result.skipped)} skipped), "
                  f"{result.states} FID moment states, window {result.window[0].isoformat()} → {result.window[1].isoformat()}")


def reference_build(niche: str = typer.Argument(..., help="Niche the images represent (e.g. headshot)."),
                    directory: Path = typer.Argument(..., help="Directory of real images of the niche (png/jpg/webp)."),
                    seed: int = typer.Option(0, help="Seed of the half/half split and the noise anchor images."),
                    config: Optional[Path] = ConfigOpt) -> None:
    """Embed a niche's reference images with the scorer's extractor and store their FID moments,
    embeddings (for CMMD) and FID anchors; replaces the niche's previous set for this extractor."""
    settings = settings_from(config)
    from rich.progress import Progress

    from sentinel.clip import ClipExtractor
    from warehouse import references
    from warehouse.client import ClickHouseWarehouse, WarehouseError, migrate
    from warehouse.owner import live_owner

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


def reference_list(config: Optional[Path] = ConfigOpt) -> None:
    """Reference sets stored for the configured extractor."""
    settings = settings_from(config)
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
