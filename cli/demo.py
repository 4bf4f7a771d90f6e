"""`sentinel demo`: the whole pipeline on the embedded stack, in five printed steps: synthetic
reference sets, the stack, inference nodes generating traffic, simulated ratings, the report.
The scores come from random-weight stand-in models: the demo proves the pipeline, not quality."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from cli.common import ConfigOpt, PricingOpt, console, counting_progress, registry_path, settings_from
from cli.demo_guard import DemoGuard, guard_env, guarded_model, published_events
from config.settings import Settings

DEMO_STRENGTHS_SPREAD = 0.6  # planted Bradley–Terry log-strengths of the simulated raters: +0.6 ... -0.6


def demo(jobs: int = typer.Option(300, help="Jobs to generate, spread over the registry's models and 3 niches."),
         data_dir: Path = typer.Option(Path(".sentinel/demo"), help="Fresh data directory (wiped first)."),
         html_out: Path = typer.Option(Path("sentinel-demo-report.html"), "--html", help="Where to write the HTML report."),
         timeout: float = typer.Option(600, help="Seconds to wait for all jobs to be scored and stored."),
         reference_images: int = typer.Option(32, help="Synthetic reference images per niche (FID/CMMD baseline)."),
         pricing: Optional[Path] = PricingOpt,
         config: Optional[Path] = ConfigOpt) -> None:
    """Run the whole pipeline on the embedded stack and print the benchmark."""
    from inference.registry import load_registry
    from devstack.process_group import stop_signals

    settings = settings_from(config, data_dir=data_dir, pricing_file=pricing)
    models = sorted(load_registry(registry_path(settings)))
    if data_dir.exists():
        shutil.rmtree(data_dir)
    console.rule("Sentinel Stream demo")
    t0 = time.monotonic()
    with stop_signals():  # SIGTERM/SIGHUP stop the stack and the nodes as Ctrl-C does
        _run_demo(settings, models, jobs, html_out, timeout, reference_images, t0)
    console.print(f"[green]done[/] in {time.monotonic() - t0:.0f}s; broker and worker stopped. "
                  "Scores come from random-weight stand-in models, synthetic reference sets and simulated raters: "
                  "they prove the pipeline, not image quality.")
    console.print(_look_again(data_dir))


def _look_again(data_dir: Path) -> str:
    """The commands that read the demo's store afterwards (it is not the default data dir)."""
    prefix = f"SENTINEL_DATA_DIR={shlex.quote(str(data_dir))}"
    return (f"the demo's data stays in {data_dir}; read it with:\n"
            f"  {prefix} sentinel report\n"
            f"  {prefix} sentinel sql \"SELECT model_id, count() AS jobs FROM sentinel.jobs GROUP BY model_id\"")


def _run_demo(settings: Settings, models: list[str], jobs: int, html_out: Path, timeout: float,
              reference_images: int, t0: float) -> None:
    """Steps 1 to 5; every child is stopped on the way out, however it ends."""
    from reports import report as reports
    from warehouse.window import Window
    from devstack.stack import CHILD_ENV, EmbeddedStack
    from warehouse.client import open_reader, redact

    _demo_references(settings, reference_images)
    console.print("2/5 starting the embedded broker (noida-db), a Faust worker and chDB ...")
    with EmbeddedStack(settings) as stack:
        s = stack.settings
        console.print(f"    broker {s.broker_url}, worker {stack.worker.url}, warehouse {redact(s.dsn)} "
                      f"({time.monotonic() - t0:.1f}s)")
        guarded = guarded_model(models)
        guard = DemoGuard(s.data_dir).start({**os.environ, **s.to_env(), **CHILD_ENV}) if guarded else None
        console.print(f"3/5 {len(models)} inference nodes ({', '.join(models)}) generate {jobs} jobs on tiny offline pipelines"
                      + (f"; {guarded} is guarded by `sentinel guard` ({guard.url}) and plants a few bad outputs"
                         if guard else ""))
        nodes = _start_nodes(s, models, jobs, guard, guarded)
        reader = open_reader(s.dsn)
        try:
            _wait_until_scored(reader, stack, nodes, jobs, timeout)
        finally:
            _stop_nodes(nodes)
            if guard is not None:
                guard.stop()
        _demo_ratings(s, reader, models, timeout)
        console.print("5/5 report (queried through the worker that owns the chDB store)")
        data = reports.benchmark(reader, s.pricing(), Window(), "", s.quality_config(),
                                 s.bootstrap_config())
        reports.render_terminal(data, Console())
        html_out.write_text(reports.render_html(data))
        console.print(f"HTML report: {html_out.resolve()}")


def _demo_references(settings: Settings, per_niche: int) -> None:
    """Step 1: synthetic reference images per niche, then `sentinel reference build` for each
    (in a child process: the worker will own the embedded store afterwards)."""
    from rich.progress import Progress

    from inference.reference_images import generate_reference_images
    from inference.traffic import NICHES
    from devstack.process_group import die_with_parent
    from devstack.stack import CHILD_ENV, ORPHAN_SIGNAL

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
                              env=env, capture_output=True, text=True, preexec_fn=die_with_parent(ORPHAN_SIGNAL))
        if done.returncode != 0:
            console.print(f"[red]demo failed:[/] reference build for {niche}:\n{done.stderr[-2000:]}")
            raise typer.Exit(1)
        console.print("    " + done.stderr.strip().splitlines()[-1])


def _start_nodes(settings: Settings, models: list[str], jobs: int, guard: DemoGuard | None = None,
                 guarded: str | None = None) -> list[tuple]:
    """Step 3: one `sentinel node` child process per model, the jobs split evenly; each logs to
    <data_dir>/logs/node-<model>.log (``guarded``: that node asks ``guard``). Returns (model,
    process, log file) per node."""
    from devstack.process_group import die_with_parent
    from devstack.stack import CHILD_ENV, ORPHAN_SIGNAL

    env = {**os.environ, **settings.to_env(), **CHILD_ENV}
    logs = settings.data_dir / "logs"
    nodes = []
    for i, (model, n) in enumerate(zip(models, _jobs_per_model(jobs, len(models)))):
        log_file = (logs / f"node-{model}.log").open("wb")
        nodes.append((model, subprocess.Popen(
            [sys.executable, "-m", "cli.main", "node", "--model", model, "--jobs", str(n), "--seed", str(i),
             "--node-id", f"demo-node-{i}", *(guard.node_args() if guard and model == guarded else [])],
            env=guard_env(env, guard, model, guarded), stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=die_with_parent(ORPHAN_SIGNAL)), log_file))
    return nodes


def _jobs_per_model(jobs: int, models: int) -> list[int]:
    """``jobs`` split over ``models`` nodes as evenly as whole jobs allow, the first ones taking one more."""
    return [jobs // models + (1 if i < jobs % models else 0) for i in range(models)]


def _wait_until_scored(reader, stack, nodes: list[tuple], jobs: int, timeout: float) -> None:
    """Show stored and scored jobs until every published event is both (``jobs``, plus the
    guarded node's discarded attempts once the nodes are done); exit 1 when a node fails, the
    worker exits or ``timeout`` seconds pass."""
    import sql as sql_files

    logs = stack.settings.data_dir / "logs"
    deadline = time.monotonic() + timeout
    with counting_progress() as progress:
        stored = progress.add_task("    stored in ClickHouse", total=jobs)
        scored = progress.add_task("    scored (CLIP)       ", total=jobs)
        while True:
            row = reader.query(sql_files.report("progress")).to_pylist()[0]
            published = published_events(nodes, logs)
            total = published or jobs
            progress.update(stored, completed=row["jobs"], total=total)
            progress.update(scored, completed=row["scored"], total=total)
            if published is not None and row["jobs"] >= total and row["scored"] >= total:
                break
            failed = [(m, p) for m, p, _ in nodes if p.poll() not in (None, 0)]
            if failed or stack.worker.proc.poll() is not None or time.monotonic() > deadline:
                why = (f"node {failed[0][0]} exited with {failed[0][1].returncode}; see {logs}" if failed else
                       f"worker exited:\n{stack.worker.log_tail()}" if stack.worker.proc.poll() is not None
                       else f"timed out after {timeout:.0f}s; logs in {logs}")
                console.print(f"[red]demo failed:[/] {why}")
                raise typer.Exit(1)
            time.sleep(0.5)


def _stop_nodes(nodes: list[tuple]) -> None:
    for _, proc, log_file in nodes:
        if proc.poll() is None:
            proc.terminate()
        proc.wait()
        log_file.close()


def _demo_ratings(settings: Settings, reader, models: list[str], timeout: float) -> None:
    """Step 4: SIMULATED blind pairwise ratings of stored job pairs (same prompt and niche), from
    planted strengths, published to ratings.pairwise and stored by the worker."""
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
