"""FID drift from the stored per-bucket moments (sentinel/fid_drift.py, worker/stages/fid_drift.py),
driven without a broker: embeddings from numpy, the "stored" moments of each bucket computed here
from them, the scores agent's alerts collected from a recording topic.

A planted shift (one model x niche starts emitting images from another distribution, CLIP
unchanged) fires exactly one FID incident within the documented delay -- at most
(m + 1) windows of ``min_images`` plus one bucket of images after the shift starts -- and resolves
after the shift ends; 20,000 stationary images fire nothing. Window FIDs equal an independent
Fréchet distance computed here with scipy.linalg.sqrtm on the raw embeddings.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.linalg

from contracts.codec import AvroCodec
from contracts.topics import JOBS_SCORED
from sentinel.drift import DriftConfig, WindowedConfig
from sentinel.fid import FeatureMoments
from sentinel.fid_drift import FidDriftConfig, FidDriftTracker
from worker.agents.scores import ScoresAgent
from worker.metrics import WorkerMetrics
from worker.stages.dead_letters import DeadLetters
from worker.stages.drift import DriftStage
from worker.stages.fid_drift import FidDriftStage
from worker_fakes import Event, Stream, Topic, Warehouse, ledger_for, protocol_with

D, BUCKET_S, PER_BUCKET, MIN_IMAGES, M = 64, 60, 50, 200, 3
T0 = datetime(2026, 1, 5, tzinfo=timezone.utc)
CONFIG = FidDriftConfig(bucket_s=BUCKET_S, min_images=MIN_IMAGES, grace_s=5,
                        detector=WindowedConfig(baseline_windows=5, margin_rel=0.25, m=M, resolve_fraction=0.5))
# the documented detection delay (README "FID drift"): at most (m + 1) windows plus one bucket
MAX_DELAY_IMAGES = (M + 1) * MIN_IMAGES + PER_BUCKET


class World:
    """Unit-norm embeddings like CLIP's: normalize(2·mu + A z), shifted by adding a direction."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        mu = self.rng.normal(size=D)
        self.mu = mu / np.linalg.norm(mu)
        self.a = self.rng.normal(size=(D, D)) / np.sqrt(D)
        self.shift = np.eye(D)[0]

    def images(self, n: int, shifted: bool = False) -> np.ndarray:
        x = 2 * (self.mu + (self.shift if shifted else 0)) + self.rng.normal(size=(n, D)) @ self.a.T
        return x / np.linalg.norm(x, axis=1, keepdims=True)


class Store:
    """The per-bucket moment states the jobs agent would have stored, all partitions merged."""

    def __init__(self) -> None:
        self.buckets: dict[int, np.ndarray] = {}

    def add(self, bucket: int, x: np.ndarray) -> None:
        self.buckets[bucket] = np.concatenate([self.buckets[bucket], x]) if bucket in self.buckets else x

    def load(self, version: str, model: str, niche: str, start: int, end: int) -> list[tuple[int, FeatureMoments]]:
        return [(b, FeatureMoments.from_features(x)) for b, x in self.buckets.items() if start <= b < end]


def score(i: int, t: datetime, clip: float) -> dict:
    return {"job_id": f"job-{i}", "scorer_version": "v-test", "model_id": "flux-dev", "niche": "headshot",
            "scored_at": t + timedelta(seconds=3), "clip_prompt_score": clip, "clip_reference_score": None,
            "embedding": [0.0] * 4, "flags": [], "requested_at": t}


def stream(world: World, store: Store, shifted_buckets: range, n_buckets: int) -> list[dict]:
    """Images of ``n_buckets`` buckets, PER_BUCKET each, evenly spaced in event time."""
    values, start = [], int(T0.timestamp())
    for b in range(n_buckets):
        x = world.images(PER_BUCKET, shifted=b in shifted_buckets)
        store.add(start + b * BUCKET_S, x)
        for j in range(PER_BUCKET):
            t = T0 + timedelta(seconds=b * BUCKET_S + j * BUCKET_S / PER_BUCKET)
            values.append(score(b * PER_BUCKET + j, t, 30.0 + world.rng.normal()))  # CLIP: same distribution
    return values


def frechet_scipy(x: np.ndarray, y: np.ndarray) -> float:
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real))


def run_agent(values: list[dict], store: Store, reference: np.ndarray, batch: int = 100):
    rt = SimpleNamespace(warehouse=Warehouse(), metrics=WorkerMetrics(), sink_pool=ThreadPoolExecutor(1))
    alerts, table = Topic(), {}
    ref = FeatureMoments.from_features(reference)
    fid_stage = FidDriftStage(table, CONFIG, "v-test", store.load, lambda niche: ref if niche == "headshot" else None)
    agent = ScoresAgent(rt, DriftStage(table, DriftConfig(baseline_n=200), "v-test"),
                        DeadLetters(Topic(), JOBS_SCORED, rt.metrics), alerts,
                        protocol_with(ledger_for(JOBS_SCORED, ["scores"])), batch, 0.1, fid_stage)
    codec = AvroCodec("JobScored")
    events = [Event(codec.encode(v), 0, i, topic=JOBS_SCORED) for i, v in enumerate(values)]
    asyncio.run(agent(Stream([events[i:i + batch] for i in range(0, len(events), batch)])))
    return [v for _, v, _ in alerts.sent], table, fid_stage


def test_a_planted_shift_fires_one_fid_incident_and_resolves() -> None:
    world, store = World(1), Store()
    reference = world.images(2000)
    shift = range(42, 72)  # starts mid-window (windows are 4 buckets), lasts 1,500 images
    values = stream(world, store, shift, 140)
    sent, table, _ = run_agent(values, store, reference)

    assert [(a["metric"], a["state"]) for a in sent] == [("fid", "firing"), ("fid", "resolved")]  # CLIP quiet
    assert sent[0]["alert_id"] == sent[1]["alert_id"] == "flux-dev|headshot|fid#1"
    shift_t = T0 + timedelta(seconds=shift.start * BUCKET_S)
    end_t = T0 + timedelta(seconds=shift.stop * BUCKET_S)
    # images emitted between the shift's start and the firing window's end (its alert time)
    delay = sum(1 for v in values if shift_t <= v["requested_at"] < sent[0]["at"])
    assert 0 < delay <= MAX_DELAY_IMAGES, delay
    assert sent[1]["at"] > end_t and sent[0]["current"] > sent[0]["baseline"] * 1.25
    stored = FidDriftTracker.from_dict(table["flux-dev|headshot|fid"])
    assert stored.detector.state == "ok" and stored.detector.seq == 1


def test_window_fid_equals_an_independent_frechet_distance() -> None:
    world, store = World(2), Store()
    reference = world.images(1000)
    values = stream(world, store, range(0), 12)
    ref = FeatureMoments.from_features(reference)
    stage = FidDriftStage({}, CONFIG, "v-test", store.load, lambda niche: ref)
    changed = stage.observe([(Event(b"", 0, 0), v) for v in values])
    stage.apply(changed, stage.fetch(changed))
    tracker = changed["flux-dev|headshot|fid"][0]
    assert [(w.images, w.start) for w in tracker.windows] == [
        (MIN_IMAGES, int(T0.timestamp()) + k * 4 * BUCKET_S) for k in range(2)]  # bucket 8..11 not closed+full
    for w in tracker.windows:
        x = np.concatenate([store.buckets[b] for b in range(w.start, w.end, BUCKET_S)])
        assert w.fid == pytest.approx(frechet_scipy(x, reference), rel=1e-6, abs=1e-9)


def test_no_incident_over_20000_stationary_images() -> None:
    world, store = World(3), Store()
    reference = world.images(2000)
    values = stream(world, store, range(0), 20_000 // PER_BUCKET)
    stage = FidDriftStage({}, CONFIG, "v-test", store.load, lambda niche: FeatureMoments.from_features(reference))
    alerts = []
    for i in range(0, len(values), 500):
        changed = stage.observe([(Event(b"", 0, 0), v) for v in values[i:i + 500]])
        alerts += stage.apply(changed, stage.fetch(changed))
        stage.write(changed)
    tracker = changed["flux-dev|headshot|fid"][0]
    assert alerts == []
    assert tracker.detector.n >= 20_000 // MIN_IMAGES - 1 and tracker.detector.state == "ok"


def test_a_replayed_batch_neither_counts_a_window_twice_nor_fires_twice() -> None:
    world, store = World(4), Store()
    reference = world.images(2000)
    values = stream(world, store, range(30, 60), 80)
    ref = FeatureMoments.from_features(reference)
    table: dict = {}
    stage = FidDriftStage(table, CONFIG, "v-test", store.load, lambda niche: ref)
    alerts = []
    for i in range(0, len(values), 250):
        for _ in range(2):  # each batch delivered twice; the second time from the stored state
            stage.forget()
            changed = stage.observe([(Event(b"", 0, 0), v) for v in values[i:i + 250]])
            alerts += stage.apply(changed, stage.fetch(changed))
            stage.write(changed)
    assert [a["state"] for a in alerts] == ["firing", "resolved"]


def test_no_reference_set_no_windows() -> None:
    world, store = World(5), Store()
    values = stream(world, store, range(0), 20)
    loads = []
    stage = FidDriftStage({}, CONFIG, "v-test", lambda *args: loads.append(args) or store.load(*args), lambda niche: None)
    changed = stage.observe([(Event(b"", 0, 0), v) for v in values])
    fetched = stage.fetch(changed)
    assert fetched and loads == []  # due ranges, but no moments read for them: nothing to compare with
    assert stage.apply(changed, fetched) == []
    assert changed["flux-dev|headshot|fid"][0].windows == []
    assert changed["flux-dev|headshot|fid"][0].due() is None  # the range is consumed all the same
