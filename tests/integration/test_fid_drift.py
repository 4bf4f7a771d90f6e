"""FID drift end to end, short: a reference set built by the CLI, JobCompleted events through the
real broker and worker (tiny CLIP, moments stored per bucket), one model x niche switching from
scene images like the reference to noise images and back -> one FID incident on alerts.quality,
stored in sentinel.alerts, firing during the shift and resolved after it.

Small windows so it stays short: one-minute moment buckets of 12 images (an event every 5 s of
event time), a window per bucket, baseline of 3 windows, m = 2. One partition, so every JobScored
follows the moments of its bucket (the jobs agent stores moments before it sends scores).
The same stack checks the worker's scheduled benchmark snapshots (events in recent event time)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import BASE_TIME, image_bytes, make_event, publish_events, wait_for

import sql as sql_files

pytestmark = pytest.mark.integration

PER_BUCKET, BASELINE, SHIFT, RECOVER = 12, 4, 3, 6  # buckets of each phase
N_EVENTS = (BASELINE + SHIFT + RECOVER) * PER_BUCKET + 2  # +2: event time past the last bucket closes it
SNAPSHOT_PERIOD_S = 600
# recent event time, so the worker's scheduled snapshots (the last 3 closed 10-minute periods)
# cover every event: from 20 minutes before the current period's start
_NOW = int(datetime.now(timezone.utc).timestamp())
T0 = datetime.fromtimestamp(_NOW - _NOW % SNAPSHOT_PERIOD_S - 2 * SNAPSHOT_PERIOD_S, timezone.utc)


def _scene(seed: int, size: int = 64):
    """A smooth gradient with a few ellipses (as in test_quality): content like the reference."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    im = Image.fromarray((np.stack([x * 200, y * 180, (1 - x) * 160], axis=-1) % 256).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for _ in range(3):
        x0, y0 = rng.integers(0, size - 16, 2)
        w, h = rng.integers(8, 32, 2)
        draw.ellipse([int(x0), int(y0), int(x0 + w), int(y0 + h)], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return im


def _scene_png(seed: int) -> bytes:
    buf = io.BytesIO()
    _scene(seed).save(buf, format="PNG")
    return buf.getvalue()


def _events() -> list[dict]:
    out = []
    for i in range(N_EVENTS):
        e = make_event(i, seed=21, model=0, niche=0)
        dt = T0 - BASE_TIME + timedelta(seconds=i * 5 - i * 7)  # make_event spaces events 7 s apart; 5 s here
        for k in ("requested_at", "started_at", "completed_at", "delivered_at"):
            e[k] += dt
        shifted = BASELINE <= i // PER_BUCKET < BASELINE + SHIFT
        e["image"], e["media_type"] = (image_bytes(i), "image/webp") if shifted else (_scene_png(7000 + i), "image/png")
        e["reference_image"] = None
        out.append(e)
    return out


@pytest.fixture(scope="module")
def drift_stack(tmp_path_factory: pytest.TempPathFactory):
    from config.settings import load_settings
    from devstack.stack import EmbeddedStack

    data_dir: Path = tmp_path_factory.mktemp("fid_drift")
    settings = load_settings(env={}, data_dir=data_dir, partitions=1, score_batch_wait_s=0.2, sink_batch_wait_s=0.3,
                             app_id=f"sentinel-fid-{os.getpid()}", moments_bucket_s=60, fid_drift_min_images=PER_BUCKET,
                             fid_drift_grace_s=1, fid_drift_baseline_windows=3, fid_drift_m=2,
                             fid_drift_margin_rel=1.0, fid_drift_resolve_fraction=0.75, snapshot_interval_s=10,
                             snapshot_period_s=SNAPSHOT_PERIOD_S, snapshot_lookback=3)
    ref = data_dir / "reference" / "headshot"
    ref.mkdir(parents=True)
    for j in range(24):
        _scene(j).save(ref / f"{j:02d}.png")
    env = {**os.environ, **settings.with_(data_dir=data_dir.resolve()).to_env()}
    done = subprocess.run([sys.executable, "-m", "cli.main", "reference", "build", "headshot", str(ref)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    stack = EmbeddedStack(settings).start()
    try:
        yield stack
    finally:
        stack.stop()


def test_a_shift_to_another_image_distribution_fires_one_fid_incident_and_resolves(drift_stack) -> None:
    from warehouse.client import open_reader

    publish_events(drift_stack.settings.bootstrap_servers, _events())
    reader = open_reader(drift_stack.settings.dsn)
    params = {"start": "1970-01-01 00:00:00.000", "end": "2200-01-01 00:00:00.000", "only_open": 0}
    wait_for(lambda: [r for r in reader.query(sql_files.report("alerts"), params).to_pylist()
                      if r["status"] == "resolved"], 180, "a resolved FID incident",
             diagnose=lambda: drift_stack.worker.log_tail())
    incidents = reader.query(sql_files.report("alerts"), params).to_pylist()
    assert [(r["model"], r["niche"], r["metric"]) for r in incidents] == [("flux-dev", "headshot", "fid")], incidents
    shift_start = T0 + timedelta(minutes=BASELINE)
    shift_end = T0 + timedelta(minutes=BASELINE + SHIFT)
    fired, resolved = incidents[0]["fired_at"], incidents[0]["resolved_at"]
    fired = fired if fired.tzinfo else fired.replace(tzinfo=timezone.utc)
    resolved = resolved if resolved.tzinfo else resolved.replace(tzinfo=timezone.utc)
    # fired at the end of the m-th shifted window (2 windows of 12 images), resolved after the shift
    assert fired == shift_start + timedelta(minutes=2)
    assert shift_end < resolved <= shift_end + timedelta(minutes=RECOVER)


def test_the_worker_takes_benchmark_snapshots_on_its_timer(drift_stack) -> None:
    """The Faust timer (every 10 s here) stores the last 3 closed 10-minute periods: together they
    hold every job published above, once (windows taken again replace their rows)."""
    from warehouse.client import open_reader

    reader = open_reader(drift_stack.settings.dsn)
    query = ("SELECT sum(jobs) AS jobs, count() AS rows, uniqExact(window_start) AS windows "
             "FROM sentinel.benchmark_snapshots FINAL WHERE model = 'flux-dev' AND niche = '*'")

    def all_jobs() -> bool:
        return reader.query(query).to_pylist()[0]["jobs"] == N_EVENTS

    wait_for(all_jobs, 120, "snapshots holding every job", diagnose=lambda: drift_stack.worker.log_tail())
    row = reader.query(query).to_pylist()[0]
    assert row["rows"] == row["windows"] <= 3
