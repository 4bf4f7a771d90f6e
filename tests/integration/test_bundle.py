"""Benchmark bundles end to end: jobs, a reference set and ratings through the real embedded stack,
`sentinel bundle export --quarter 2026Q1` while the worker owns the store, `sentinel bundle verify`
in a fresh process (its own chDB, no broker); then copies of the bundle with one score row, one
price or one reference statistic changed must fail verification, naming the file and the number."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from conftest import make_event, publish_events, wait_for

pytestmark = pytest.mark.integration

SEED = 23
Q1 = [make_event(i, seed=SEED) for i in range(72)]  # BASE_TIME is 2026-01-05: all in 2026Q1
Q2_SHIFT = datetime(2026, 4, 2, tzinfo=timezone.utc) - Q1[0]["requested_at"]


def _q2_event(i: int) -> dict[str, Any]:
    e = make_event(100 + i, seed=SEED)
    return {**e, **{k: e[k] + Q2_SHIFT for k in ("requested_at", "started_at", "completed_at", "delivered_at")}}


Q2 = [_q2_event(i) for i in range(6)]  # outside the quarter: must stay out of the bundle
EVENTS = Q1 + Q2
FILES = {"config.json", "data/jobs.parquet", "data/scores.parquet", "data/ratings.parquet",
         "data/feature_moments.parquet", "data/feature_moment_tail.parquet", "data/reference_sets.parquet", "data/benchmark_snapshots.parquet",
         "report/report.json", "report/report.md",
         "report/report.html"}


def _ratings() -> list[dict[str, Any]]:
    """24 ratings of Q1 job pairs of two models (consecutive events differ in model), and two that
    name a Q2 job (not counted by the quarter's report, so not in its bundle)."""
    rng = random.Random(5)
    pairs = [(Q1[i], Q1[i + 1]) for i in range(0, 48, 2)] + [(Q1[0], Q2[1]), (Q2[0], Q1[1])]
    return [{"rating_id": f"b-{k:03d}", "job_a": a["job_id"], "job_b": b["job_id"],
             "winner": rng.choice(["a", "a", "b", "tie"]), "rater": rng.choice(["ana", "ben", "cy"]),
             "time": "2026-02-01T10:00:00Z"} for k, (a, b) in enumerate(pairs)]


def _gradient(j: int, size: int = 64) -> Image.Image:
    """A smooth image (unlike the events' noise), so the FID anchors are far apart."""
    y, x = np.mgrid[0:size, 0:size] / size
    return Image.fromarray((np.stack([x * 200 + 3 * j, y * 180, (1 - x) * 160 + 5 * j], -1) % 256).astype(np.uint8))


def _cli(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli.main", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory):
    from config.settings import load_settings
    from devstack.stack import EmbeddedStack
    from inference.ratings import import_ratings
    from warehouse.client import open_reader

    data_dir: Path = tmp_path_factory.mktemp("bundle-stack")
    settings = load_settings(env={}, data_dir=data_dir, partitions=2, score_batch_wait_s=0.2, sink_batch_wait_s=0.3,
                             app_id=f"sentinel-bundle-{os.getpid()}", bootstrap_resamples=200)
    env = {**os.environ, **settings.with_(data_dir=data_dir.resolve()).to_env()}
    ref = data_dir / "reference" / "headshot"
    ref.mkdir(parents=True)
    for j in range(16):
        _gradient(j).save(ref / f"{j:02d}.png")
    done = _cli(env, "reference", "build", "headshot", str(ref))
    assert done.returncode == 0, done.stderr
    stack = EmbeddedStack(settings).start()
    try:
        publish_events(stack.settings.bootstrap_servers, EVENTS)
        reader = open_reader(stack.settings.dsn)
        count = "SELECT (SELECT count() FROM sentinel.scores FINAL) AS scored, (SELECT sum(n) FROM " \
                "sentinel.feature_moments FINAL) + (SELECT count() FROM sentinel.feature_moment_tail_unheld) " \
                "AS moments, (SELECT count() FROM sentinel.ratings FINAL) AS ratings"
        wait_for(lambda: reader.query(count).to_pylist()[0]["scored"] == len(EVENTS), 240, "all events scored",
                 diagnose=stack.worker.log_tail)
        path = data_dir / "ratings.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in _ratings()))
        assert import_ratings(stack.settings.bootstrap_servers, path).published == len(_ratings())
        wait_for(lambda: reader.query(count).to_pylist()[0] == {"scored": len(EVENTS), "moments": len(EVENTS),
                                                                "ratings": len(_ratings())},
                 120, "moments and ratings stored", diagnose=stack.worker.log_tail)
        bundle = data_dir / "bundle-2026Q1"
        done = _cli(env, "bundle", "export", "--quarter", "2026Q1", str(bundle))  # through the live worker
        assert done.returncode == 0, done.stderr
        again = _cli(env, "bundle", "export", "--quarter", "2026Q1", str(bundle))
        assert again.returncode == 1 and "not an empty directory" in again.stderr
    finally:
        stack.stop()
    yield bundle, env


def _verify(env: dict[str, str], bundle: Path) -> subprocess.CompletedProcess:
    # no broker and no store: the verifying process is pointed at an empty data dir
    return _cli({**env, "SENTINEL_DATA_DIR": str(bundle.parent / "nothing-here"),
                 "SENTINEL_BROKER_URL": "kafka://127.0.0.1:9"}, "bundle", "verify", str(bundle))


def test_bundle_holds_exactly_the_quarters_data(exported) -> None:
    bundle, _ = exported
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert set(manifest["files"]) == FILES
    q1_ids = {e["job_id"] for e in Q1}
    assert set(pq.read_table(bundle / "data/jobs.parquet").column("job_id").to_pylist()) == q1_ids
    assert set(pq.read_table(bundle / "data/scores.parquet").column("job_id").to_pylist()) == q1_ids
    ratings = pq.read_table(bundle / "data/ratings.parquet").column("rating_id").to_pylist()
    assert sorted(ratings) == [f"b-{k:03d}" for k in range(24)]
    assert pq.read_table(bundle / "data/reference_sets.parquet").column("niche").to_pylist() == ["headshot"]
    # each Q1 image once: in an exported state or as a tail row no exported state holds
    assert sum(pq.read_table(bundle / "data/feature_moments.parquet").column("n").to_pylist()) \
        + pq.read_table(bundle / "data/feature_moment_tail.parquet").num_rows == len(Q1)
    report = json.loads((bundle / "report/report.json").read_text())
    assert {m["model"]: m["jobs"] for m in report["models"]} == Counter(e["model_id"] for e in Q1)
    assert all(m["human"] is not None for m in report["models"])  # Bradley-Terry from the ratings
    assert all((r["fid"] is not None) == (r["niche"] == "headshot") for r in report["niches"])
    config = json.loads((bundle / "config.json").read_text())
    assert config["pricing"]["gpu_usd_per_hour"]["L4"] == 0.80 and config["rubric"]["composite_weights"]["fid"] == 0.4
    assert config["scorer"]["matches_report"] and len(config["scorer"]["weights_sha256"]) == 64
    assert config["report"]["bootstrap"]["resamples"] == 200


def test_verify_recomputes_every_number(exported) -> None:
    bundle, env = exported
    done = _verify(env, bundle)
    assert done.returncode == 0, done.stderr
    assert "bundle verifies" in done.stderr and " 0 differ" in done.stderr


def _set_cell(path: Path, column: str, row: int, value: Any) -> Any:
    table = pq.read_table(path)
    values = table.column(column).to_pylist()
    old, values[row] = values[row], value
    i = table.schema.get_field_index(column)
    pq.write_table(table.set_column(i, table.schema.field(i), pa.array(values, table.schema.field(i).type)), path)
    return old


def _copy(exported, tmp_path: Path) -> Path:
    return Path(shutil.copytree(exported[0], tmp_path / "bundle"))


@pytest.mark.parametrize("forge_manifest", [False, True], ids=["digest-kept", "manifest-rewritten"])
def test_a_changed_score_row_fails_and_is_named(exported, tmp_path: Path, forge_manifest: bool) -> None:
    from reports.manifest import write_manifest

    copy = _copy(exported, tmp_path)
    scores = pq.read_table(copy / "data/scores.parquet")
    model = scores.column("model_id")[3].as_py()
    _set_cell(copy / "data/scores.parquet", "clip_prompt_score", 3, scores.column("clip_prompt_score")[3].as_py() + 7.0)
    if forge_manifest:  # digests rewritten to match: only the recomputation can tell
        write_manifest(copy)
    done = _verify(exported[1], copy)
    assert done.returncode == 1, done.stderr
    assert ("FILE data/scores.parquet: changed" in done.stderr) is not forge_manifest
    assert f"DIFF report/report.json models[{model}].clip: bundled " in done.stderr
    assert "bundle does NOT verify" in done.stderr


def test_a_changed_price_fails_and_is_named(exported, tmp_path: Path) -> None:
    copy = _copy(exported, tmp_path)
    config = json.loads((copy / "config.json").read_text())
    config["pricing"]["gpu_usd_per_hour"]["L4"] = 0.85
    (copy / "config.json").write_text(json.dumps(config, indent=2))
    done = _verify(exported[1], copy)
    assert done.returncode == 1, done.stderr
    assert "FILE config.json: changed" in done.stderr
    assert "DIFF report/report.json pricing.gpu_usd_per_hour.L4: bundled 0.8, recomputed 0.85" in done.stderr
    assert "DIFF report/report.json models[sdxl-lightning].cost_per_image_usd: bundled " in done.stderr
    assert "models[flux-dev].cost_per_image_usd" not in done.stderr  # A100 jobs cost the same


def test_a_changed_reference_statistic_fails_and_is_named(exported, tmp_path: Path) -> None:
    copy = _copy(exported, tmp_path)
    path = copy / "data/reference_sets.parquet"
    feature_sum = pq.read_table(path).column("sum")[0].as_py()  # headshot's Σx: its mean, so FID
    _set_cell(path, "sum", 0, [feature_sum[0] + 1.0] + feature_sum[1:])
    done = _verify(exported[1], copy)
    assert done.returncode == 1, done.stderr
    assert "FILE data/reference_sets.parquet: changed" in done.stderr
    for model in ("flux-dev", "sdxl-lightning", "proprietary-a"):
        assert f"DIFF report/report.json niches[{model}/headshot].fid: bundled " in done.stderr
        assert f"DIFF report/report.json niches[{model}/product].fid" not in done.stderr  # no reference there


def test_an_edited_published_number_fails_even_with_a_rewritten_manifest(exported, tmp_path: Path) -> None:
    """The report itself edited (one composite) and the digests rewritten to match: the recomputed
    number disagrees, and report.md no longer is the rendering of report.json."""
    from reports.manifest import write_manifest

    copy = _copy(exported, tmp_path)
    report = json.loads((copy / "report/report.json").read_text())
    model = report["models"][0]
    old, model["composite"] = model["composite"], model["composite"] + 0.5
    (copy / "report/report.json").write_text(json.dumps(report, indent=2))
    write_manifest(copy)
    done = _verify(exported[1], copy)
    assert done.returncode == 1, done.stderr
    assert "FILE" not in done.stderr
    assert f"DIFF report/report.json models[{model['model']}].composite: bundled {old + 0.5!r}, recomputed {old!r}" \
        in done.stderr
    assert "RENDERING report/report.md: differs from the rendering of report/report.json" in done.stderr
    assert ": 1 differ" in done.stderr
