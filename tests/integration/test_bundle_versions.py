"""A bundle of a "latest per job" report over a --from/--to window whose newest scorer version has
its FID moments only outside the window (as after `sentinel rescore --from ...`): the report
resolves FID/CMMD to that version, and so must the verifying store. The store is written
directly with the worker's row builders (no broker needed for this case); export and verify run
as separate processes, each with its own chDB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.integration

V1, V2 = "v1/sentinel-tiny-clip:seed0", "v9/sentinel-tiny-clip:seed0"
TESTS = Path(__file__).resolve().parents[1]

BUILD = """
import sys
from datetime import datetime, timezone
import numpy as np
from conftest import make_event
from sentinel.reference import build_reference
from warehouse import references
from warehouse.client import ClickHouseWarehouse, migrate
from warehouse.moments import MomentInput, MomentStates
from warehouse.rows import job_rows, score_rows

wh = ClickHouseWarehouse("chdb://" + sys.argv[1])
migrate(wh)
rng = np.random.default_rng(0)
events = [make_event(i, seed=8) for i in range(45)]
wh.insert("sentinel.jobs", job_rows([(e, 0, i) for i, e in enumerate(events)]))
emb = rng.normal(size=(len(events), 8)).astype(np.float32)
def scores(version, idx, now):
    return score_rows([{"job_id": events[i]["job_id"], "scorer_version": version, "model_id": events[i]["model_id"],
                        "niche": events[i]["niche"], "scored_at": now, "clip_prompt_score": float(20 + rng.normal()),
                        "clip_reference_score": None, "embedding": emb[i].tolist(), "flags": []} for i in idx])
wh.insert("sentinel.scores", scores(sys.argv[2], range(len(events)), datetime(2026, 6, 1, tzinfo=timezone.utc)))
MomentStates(wh).apply(sys.argv[2], [  # tail rows (no key reaches 256 images)
    MomentInput(e["model_id"], e["niche"], e["requested_at"], 0, i, emb[i]) for i, e in enumerate(events)]).write(wh)
for niche in ("headshot", "product"):
    stats = build_reference(niche, "sentinel-tiny-clip:seed0", rng.normal(size=(30, 8)), rng.normal(2, 1, (30, 8)))
    wh.insert("sentinel.reference_sets", references.rows(stats, "synthetic"))
# the newer version: scores for 12 of the window's jobs, moments only in May (outside the window)
wh.insert("sentinel.scores", scores(sys.argv[3], range(12), datetime(2026, 7, 1, tzinfo=timezone.utc)))
wh.insert("sentinel.feature_moments", MomentStates(wh, compact_every=1).apply(sys.argv[3], [  # states
    MomentInput(e["model_id"], e["niche"], e["requested_at"].replace(month=5), 0, i, emb[i])
    for i, e in enumerate(events[:9])]).states)
wh.close()
"""


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=300)


def test_latest_per_job_report_resolves_the_same_version_in_the_bundle(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "SENTINEL_DATA_DIR": str(tmp_path / "store"), "SENTINEL_BOOTSTRAP_RESAMPLES": "100"}
    built = _run(["-c", BUILD, str(tmp_path / "store" / "chdb"), V1, V2], env)
    assert built.returncode == 0, built.stderr
    start = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
    end = start + timedelta(seconds=7 * 30)  # make_event spaces jobs 7 s apart: the first 30 jobs
    bundle = tmp_path / "bundle"
    done = _run(["-m", "cli.main", "bundle", "export", "--from", start.isoformat(), "--to", end.isoformat(),
                 str(bundle)], env)
    assert done.returncode == 0, done.stderr
    report = json.loads((bundle / "report/report.json").read_text())
    assert report["quality"]["scorer_version"] == V2 and report["scorer_version"] == "latest per job"
    assert sum(m["jobs"] for m in report["models"]) == 30
    assert all(m["fid"] is None for m in report["models"])  # V2 has no moments in the window
    assert any(m["cmmd"] is not None for m in report["niches"])  # but scores (embeddings) in it
    moments = pq.read_table(bundle / "data/feature_moments.parquet").to_pylist()
    assert [(m["scorer_version"], m["bucket"].month) for m in moments] == [(V2, 5)]  # the one marker state
    scores = pq.read_table(bundle / "data/scores.parquet").select(["scorer_version"]).to_pylist()
    assert sorted({s["scorer_version"] for s in scores}) == [V1, V2] and len(scores) == 30 + 12
    verified = _run(["-m", "cli.main", "bundle", "verify", "--rel-tol", "0", "--abs-tol", "0", str(bundle)],
                    {**env, "SENTINEL_DATA_DIR": str(tmp_path / "empty")})
    assert verified.returncode == 0, verified.stderr
    assert " 0 differ" in verified.stderr
