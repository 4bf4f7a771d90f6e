"""Trace replay on the real stack: a generated quarter replayed as recorded, and live runs whose
measured timings add up."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import defaultdict
from datetime import datetime, timedelta

import numpy as np
import pytest
from conftest import running_stack, wait_for

import sql as sql_files
from reports import report as reports
from warehouse.window import Window
from warehouse.client import open_reader

pytestmark = pytest.mark.integration

N = 12_000
PRICES = {"A100-80GB": 1.89, "H100-80GB": 2.99, "L4": 0.80, "cpu": 0.05}


def _ms(text: str | int) -> float:
    if isinstance(text, int):
        return float(text)
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000


@pytest.fixture(scope="module")
def embedded_stack(tmp_path_factory):
    """The shared stack, but with a metadata-only worker (SENTINEL_SCORE_ENABLED=false): nothing
    here reads a score, and CLIP-scoring 12,000 images made this module the slowest of the suite
    (scoring is tested in test_pipeline.py and test_quality.py)."""
    yield from running_stack(tmp_path_factory, score_enabled=False)


@pytest.fixture(scope="module")
def replayed(embedded_stack, tmp_path_factory):
    from inference.trace import generate_trace, write_trace

    trace = tmp_path_factory.mktemp("trace") / "quarter.jsonl"
    write_trace(generate_trace(N, seed=3), trace)
    lines = [json.loads(line) for line in trace.read_text().splitlines()]
    api = [row for row in lines if row["provider"] == "api"]
    for i, row in enumerate(api):  # as production exports write API rows: no GPU-seconds
        if i % 2:
            row["gpu_seconds"] = None
        else:
            del row["gpu_seconds"]
    trace.write_text("".join(json.dumps(row) + "\n" for row in lines))
    with trace.open("a") as fh:  # bad rows among the good ones: rejected by line, nothing else lost
        fh.write('{"job_id": "broken-1", "model": "flux-dev"}\n')
        fh.write("this is not json\n")
    env = {**os.environ, **embedded_stack.settings.to_env()}
    out = subprocess.run([sys.executable, "-m", "cli.main", "replay", str(trace), "--as-recorded"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    reader = open_reader(embedded_stack.settings.dsn)
    wait_for(lambda: reader.query(sql_files.report("progress")).to_pylist()[0]["jobs"] >= N, 600,
             f"{N} replayed jobs stored", diagnose=embedded_stack.worker.log_tail)
    return trace, out.stderr, reader


def test_replay_stores_exactly_the_trace(replayed):
    trace, stderr, reader = replayed
    assert f"line {N + 1}:" in stderr and f"line {N + 2}:" in stderr
    assert "stand-in" not in stderr  # seeded images by default: no pipeline runs
    assert "dead-letter" not in stderr  # the trace's models and niches are in the worker's catalog
    lines = [json.loads(line) for line in trace.read_text().splitlines()[:N]]
    ids = reader.query("SELECT job_id FROM sentinel.jobs FINAL").column("job_id").to_pylist()
    assert len(ids) == N and set(ids) == {row["job_id"] for row in lines}
    api = reader.query("SELECT count() AS n, max(gpu_seconds) AS gpu FROM sentinel.jobs FINAL "
                       "WHERE provider = 'api'").to_pylist()[0]
    assert api["n"] == sum(row["provider"] == "api" for row in lines) > 0 and api["gpu"] == 0


def test_report_matches_numpy_from_the_trace_file(replayed, embedded_stack):
    trace, _, reader = replayed
    by_model: dict[str, list[dict]] = defaultdict(list)
    for line in trace.read_text().splitlines()[:N]:
        row = json.loads(line)
        by_model[row["model"]].append(row)
    data = reports.benchmark(reader, embedded_stack.settings.pricing(), Window())
    models = {m["model"]: m for m in data["models"]}
    assert set(models) == set(by_model) and len(models) == 8
    for model, rows in by_model.items():
        latency = np.array([_ms(r["delivered_at"]) - _ms(r["requested_at"]) for r in rows])
        costs = [(r["api_cost_usd"] + 0.002) if r["provider"] == "api" else
                 r["gpu_seconds"] * PRICES[r["gpu_type"]] / 3600 * 1.15 + 0.002 for r in rows]
        assert models[model]["jobs"] == len(rows)
        assert models[model]["p95_latency_ms"] == pytest.approx(np.percentile(latency, 95), rel=1e-9)
        assert models[model]["cost_per_image_usd"] == pytest.approx(np.mean(costs), rel=1e-9)


def test_live_replay_timings_add_up(embedded_stack, tmp_path):
    from inference.node import InferenceNode
    from inference.publisher import JobPublisher
    from inference.registry import load_registry
    from inference.replay import replay_live
    from inference.trace import generate_trace
    from config.settings import PROJECT_ROOT

    models = load_registry(PROJECT_ROOT / "models.toml")
    names = sorted(models)
    rows = [r.__class__(**{**r.__dict__, "model": names[i % len(names)], "job_id": f"live-{i}"})
            for i, r in enumerate(generate_trace(240, seed=9))]
    nodes = [InferenceNode(models, node_id=f"n{i}", cache_dir=embedded_stack.settings.models_dir) for i in range(2)]

    async def main():
        async with JobPublisher(embedded_stack.broker.bootstrap) as publisher:
            return await replay_live(rows, nodes, publisher, rate=40.0)

    result = asyncio.run(main())
    assert result.published == len(rows) and result.p95_latency_ms is not None and result.throughput > 0
    reader = open_reader(embedded_stack.settings.dsn)
    stored = wait_for(lambda: (t := reader.query(
        "SELECT * FROM sentinel.jobs FINAL WHERE startsWith(job_id, 'live-')").to_pylist()) and len(t) == len(rows) and t,
        120, "live jobs stored")
    cold = 0
    for job in stored:
        e2e = (job["delivered_at"] - job["requested_at"]) / timedelta(milliseconds=1)
        queue = (job["started_at"] - job["requested_at"]) / timedelta(milliseconds=1)
        delivery = (job["delivered_at"] - job["completed_at"]) / timedelta(milliseconds=1) - job["encode_ms"]
        parts = queue + job["cold_start_ms"] + job["inference_ms"] + job["encode_ms"] + delivery
        # timestamps travel at ms precision: allow a few ms of truncation per boundary
        assert parts == pytest.approx(e2e, abs=5.0), job["job_id"]
        assert delivery >= -2.0 and queue >= 0
        cold += job["cold_start"]
        if job["provider"] == "api":
            assert job["gpu_seconds"] == 0 and job["api_cost_usd"] == models[job["model_id"]].api_cost_usd
    self_hosted = [m for m in models.values() if not m.is_api]
    assert cold == len(self_hosted) * len(nodes)  # each node loads each self-hosted model once
