"""Replay as recorded: jobs/s published with seeded images (the default) vs diffusion pipelines.

``sentinel replay --as-recorded`` publishes one JobCompleted event per trace row with the trace's
timings and an image made from the row's seed. The default renders a small seeded gradient PNG
(inference/seeded_images.py); ``--render pipelines`` runs each model's tiny diffusion pipeline
(the trace's models are not in the registry, so deterministic stand-ins at the registry's
default size and steps, as the command would). Both are timed in the same run, through the same
publisher (acks=all, idempotent) into the embedded noida broker, from the first row to the last
acknowledgement; the pipelines are loaded before the clock starts (load time is printed apart).
The target is at least 1,000 jobs/s for the default.

Usage::

    python bench/replay.py [--jobs 12000] [--pipeline-jobs 40] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPO, loadavg, log, machine_info, machine_line, write_results

TARGET_JOBS_PER_S = 1_000.0


async def _replay(bootstrap: str, rows: list, renderer: Any) -> dict[str, Any]:
    from inference.publisher import JobPublisher
    from inference.replay import replay_as_recorded

    sizes: list[int] = []
    async with JobPublisher(bootstrap) as publisher:
        result = await replay_as_recorded(rows, renderer, publisher,
                                          on_published=lambda event: sizes.append(len(event["image"])))
    return {"jobs": result.published, "seconds": round(result.seconds, 3),
            "jobs_per_s": round(result.throughput, 1), "mean_image_bytes": round(sum(sizes) / len(sizes))}


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    from devstack.broker import EmbeddedBroker
    from devstack.stack import _create_topics
    from inference.pipeline_images import PipelineImages
    from inference.registry import load_registry
    from inference.seeded_images import SeededImages
    from inference.trace import generate_trace

    rows = generate_trace(args.jobs, seed=args.seed)
    with EmbeddedBroker(data_dir=root / "broker") as broker:
        asyncio.run(_create_topics(broker.bootstrap, {"jobs.completed": 4}))
        log(f"seeded: {len(rows):,} jobs")
        seeded = asyncio.run(_replay(broker.bootstrap, rows, SeededImages()))
        pipelines = PipelineImages(load_registry(REPO / "models.toml"), root / "models")
        few = rows[len(rows) - args.pipeline_jobs:]  # other job ids than any seeded row
        t0 = time.perf_counter()
        pipelines.load(sorted({row.model for row in few}))
        load_s = time.perf_counter() - t0
        log(f"pipelines: {len(few)} jobs ({load_s:.1f}s to load their pipelines first)")
        piped = asyncio.run(_replay(broker.bootstrap, few, pipelines))
        piped["load_seconds"] = round(load_s, 1)
    return {"seeded": seeded, "pipelines": piped,
            "seeded_over_pipelines": round(seeded["jobs_per_s"] / piped["jobs_per_s"], 1),
            "target_met": seeded["jobs_per_s"] >= TARGET_JOBS_PER_S}


def report(doc: dict[str, Any]) -> str:
    r = doc["results"]
    lines = ["### Replay as recorded: jobs/s by image source (same run, same publisher and broker)", "",
             "| images | jobs | seconds | jobs/s | mean image bytes |", "|---|---:|---:|---:|---:|"]
    for name, label in (("seeded", "seeded gradient PNG (default)"), ("pipelines", "tiny diffusion pipelines")):
        x = r[name]
        lines.append(f"| {label} | {x['jobs']:,} | {x['seconds']:.2f} | {x['jobs_per_s']:,.1f} | {x['mean_image_bytes']:,} |")
    lines += ["", f"Seeded over pipelines: {r['seeded_over_pipelines']:,}x. Target {TARGET_JOBS_PER_S:,.0f} jobs/s "
                  f"for the default: {'met' if r['target_met'] else 'NOT met'}. The pipelines took "
                  f"{r['pipelines']['load_seconds']} s to load before their clock started.", "", machine_line(doc)]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=12_000, help="rows replayed with seeded images")
    ap.add_argument("--pipeline-jobs", type=int, default=40, help="rows replayed with pipelines (a few per second)")
    ap.add_argument("--quick", action="store_true", help="2,000 seeded rows, 16 with pipelines")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.quick:
        args.jobs, args.pipeline_jobs = 2_000, 16
    t0 = time.perf_counter()
    doc: dict[str, Any] = {"bench": "replay", "args": {k: str(v) for k, v in vars(args).items()},
                           "machine": machine_info(), "loadavg_start": loadavg()}
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        doc["results"] = run(args, Path(tmp))
    doc["loadavg_end"] = loadavg()
    doc["runtime_s"] = round(time.perf_counter() - t0, 1)
    text = report(doc)
    print(text)
    write_results("replay", doc, text, args.out)


if __name__ == "__main__":
    main()
