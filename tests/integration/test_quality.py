"""FID, CMMD and the composite end to end: reference sets built by the CLI, events through the
real broker and worker, moments merged in chDB — checked against a direct recomputation from
the images (a fresh extractor in this process, numpy/scipy statistics)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from conftest import BASE_TIME, make_event, publish_events, wait_for

N_EVENTS = 144  # 3 models x 3 niches x 16
REF_NICHES = ("headshot", "product")  # portrait has no reference set: FID must stay empty there
REF_IMAGES = 24
BUCKET_S = 120


@pytest.fixture(scope="module")
def quality_stack(tmp_path_factory: pytest.TempPathFactory):
    from config.settings import load_settings
    from devstack.stack import EmbeddedStack

    data_dir: Path = tmp_path_factory.mktemp("quality")
    settings = load_settings(env={}, data_dir=data_dir, partitions=4, score_batch_wait_s=0.2, sink_batch_wait_s=0.3,
                             app_id=f"sentinel-quality-{os.getpid()}", moments_bucket_s=BUCKET_S)
    ref_dirs = {}
    for k, niche in enumerate(REF_NICHES):
        d = data_dir / "reference" / niche
        d.mkdir(parents=True)
        for j in range(REF_IMAGES):
            _scene(1000 * k + j, hue=k).save(d / f"{j:02d}.png")
        env = {**os.environ, **settings.with_(data_dir=data_dir.resolve()).to_env()}
        done = subprocess.run([sys.executable, "-m", "cli.main", "reference", "build", niche, str(d)],
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert f"{REF_IMAGES} images" in done.stderr
        ref_dirs[niche] = d
    stack = EmbeddedStack(settings).start()
    events = [make_event(i, seed=11) for i in range(N_EVENTS)]
    publish_events(stack.settings.bootstrap_servers, events)
    try:
        yield stack, events, ref_dirs
    finally:
        stack.stop()


def _scene(seed: int, hue: int, size: int = 64) -> Image.Image:
    """A smooth 'photo-like' image (gradient + shapes): unlike noise, it has content."""
    from PIL import ImageDraw

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([x * 200 + 40 * hue, y * 180, (1 - x) * 160 + 60 * hue], axis=-1) % 256
    im = Image.fromarray(base.astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for _ in range(3):
        x0, y0 = rng.integers(0, size - 16, 2)
        w, h = rng.integers(8, 32, 2)
        draw.ellipse([int(x0), int(y0), int(x0 + w), int(y0 + h)], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return im


def _reader(stack: Any):
    from warehouse.client import open_reader

    return open_reader(stack.settings.dsn)


def _wait_stored(stack: Any) -> None:
    reader = _reader(stack)

    def done() -> bool:
        # this scorer version only: the rescore test adds a second version beside it
        row = reader.query("SELECT (SELECT count() FROM sentinel.scores FINAL WHERE scorer_version = {v:String}) "
                           "AS scored, (SELECT sum(n) FROM sentinel.feature_moments FINAL "
                           "WHERE scorer_version = {v:String}) + (SELECT count() FROM "
                           "sentinel.feature_moment_tail_unheld WHERE scorer_version = {v:String}) AS moments",
                           {"v": stack.settings.scorer_version}).to_pylist()[0]
        return row["scored"] == N_EVENTS and row["moments"] == N_EVENTS

    wait_for(done, 240, "all events scored and in the FID moments", diagnose=lambda: stack.worker.log_tail())


def _features(images: list[Image.Image]) -> np.ndarray:
    from sentinel.clip import ClipExtractor, ClipSpec

    return ClipExtractor(ClipSpec()).encode_images(images).astype(np.float64)


def _event_features(events: list[dict]) -> np.ndarray:
    return _features([Image.open(io.BytesIO(e["image"])).convert("RGB") for e in events])


def _psd_sqrt(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def _fid(x: np.ndarray, y: np.ndarray) -> float:
    """Fréchet distance via the symmetric form Tr((S1^½ S2 S1^½)^½) — not the code's eigvals path."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    root = _psd_sqrt(s1)
    inner = np.linalg.eigvalsh(root @ s2 @ root)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(np.clip(inner, 0, None))))


def _cmmd(x: np.ndarray, y: np.ndarray, sigma: float = 10.0) -> float:
    """1000 x unbiased MMD² with k = exp(-|a-b|²/(2σ²)), written out with loops over rows."""
    def k(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.exp(-np.array([[np.sum((p - q) ** 2) for q in b] for p in a]) / (2 * sigma**2))

    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    m, n = len(x), len(y)
    return 1000 * ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                   - 2 * kxy.mean())


def _reference_features(ref_dirs: dict[str, Path]) -> dict[str, np.ndarray]:
    return {niche: _features([Image.open(p).convert("RGB") for p in sorted(d.glob("*.png"))])
            for niche, d in ref_dirs.items()}


def _report(stack: Any, **window: Any) -> dict:
    from reports.report import benchmark
    from warehouse.window import Window

    return benchmark(_reader(stack), stack.settings.pricing(), Window(**window), "", stack.settings.quality_config())


def test_fid_and_cmmd_per_niche_equal_direct_recomputation(quality_stack) -> None:
    stack, events, ref_dirs = quality_stack
    _wait_stored(stack)
    report = _report(stack)
    refs = _reference_features(ref_dirs)
    feats = _event_features(events)
    rows = {(r["model"], r["niche"]): r for r in report["niches"]}
    assert len(rows) == 9
    for (model, niche), row in rows.items():
        idx = [i for i, e in enumerate(events) if e["model_id"] == model and e["niche"] == niche]
        assert row["fid_images"] == len(idx) == 16
        if niche not in refs:
            assert row["fid"] is None and row["cmmd"] is None and row["fid_score"] is None
            continue
        expected = _fid(feats[idx], refs[niche])
        assert row["fid"] == pytest.approx(expected, rel=1e-4), (model, niche)
        assert row["cmmd"] == pytest.approx(_cmmd(feats[idx], refs[niche]), rel=1e-4, abs=1e-9), (model, niche)


def test_reference_anchors_and_fid_score(quality_stack) -> None:
    from sentinel.reference import noise_images

    stack, events, ref_dirs = quality_stack
    _wait_stored(stack)
    report = _report(stack)
    refs = _reference_features(ref_dirs)
    for niche, info in report["quality"]["references"].items():
        x = refs[niche]
        assert info["n"] == REF_IMAGES
        perm = np.random.default_rng(0).permutation(len(x))  # the documented seeded half split
        half = len(x) // 2
        assert info["fid_best"] == pytest.approx(_fid(x[perm[:half]], x[perm[half:]]), rel=1e-4)
        noise = _features(noise_images(REF_IMAGES, size=64, seed=0))
        assert info["fid_worst"] == pytest.approx(_fid(noise, x), rel=1e-4)
    for row in report["niches"]:
        if row["fid"] is None:
            continue
        info = report["quality"]["references"][row["niche"]]
        t = (info["fid_worst"] - row["fid"]) / (info["fid_worst"] - info["fid_best"])
        assert row["fid_score"] == pytest.approx(100 * min(max(t, 0.0), 1.0), rel=1e-9, abs=1e-9)


def test_window_fid_equals_fid_of_the_events_in_its_buckets(quality_stack) -> None:
    stack, events, ref_dirs = quality_stack
    _wait_stored(stack)
    start, end = BASE_TIME + timedelta(seconds=2 * BUCKET_S), BASE_TIME + timedelta(seconds=6 * BUCKET_S)
    report = _report(stack, start=start, end=end)
    refs = _reference_features(ref_dirs)
    feats = _event_features(events)
    checked = 0
    for row in report["niches"]:
        idx = [i for i, e in enumerate(events) if e["model_id"] == row["model"] and e["niche"] == row["niche"]
               and start <= e["requested_at"] < end]
        assert row["fid_images"] == len(idx)
        if row["niche"] in refs and len(idx) >= 2:
            assert row["fid"] == pytest.approx(_fid(feats[idx], refs[row["niche"]]), rel=1e-4)
            checked += 1
    assert checked >= 2


def test_composite_uses_documented_weights_and_renormalizes_missing_components(quality_stack) -> None:
    stack, events, _ = quality_stack
    _wait_stored(stack)
    report = _report(stack)
    assert report["weights"] == {"fid": 0.4, "clip": 0.3, "human": 0.3}
    for row in report["niches"]:
        assert row["human"] is None  # no ratings in this stack
        if row["fid_score"] is None:
            assert row["composite"] == pytest.approx(row["clip"], rel=1e-12)
            assert set(row["composite_missing"]) == {"fid", "human"}
        else:
            assert row["composite"] == pytest.approx((0.4 * row["fid_score"] + 0.3 * row["clip"]) / 0.7, rel=1e-12)
    for model in report["models"]:
        niches = [r for r in report["niches"] if r["model"] == model["model"] and r["fid"] is not None]
        jobs = sum(r["jobs"] for r in niches)
        assert model["fid"] == pytest.approx(sum(r["jobs"] * r["fid"] for r in niches) / jobs, rel=1e-12)
        expected = (0.4 * sum(r["jobs"] * r["fid_score"] for r in niches) / jobs + 0.3 * model["clip"]) / 0.7
        assert model["composite"] == pytest.approx(expected, rel=1e-12)
    for key in ("model", "jobs", "fid", "clip", "human", "composite", "cost_per_image_usd", "p50_latency_ms",
                "p95_latency_ms"):
        assert key in report["models"][0]


def test_rescore_writes_a_new_version_beside_history(quality_stack) -> None:
    """Stop the worker (it owns the embedded store), rescore everything under a new label, start
    it again: every job has scores under both versions, and the new version's FID (from the
    moments the rescore built) equals the stream's, since the extractor is the same."""
    stack, events, _ = quality_stack
    _wait_stored(stack)
    before = {(r["model"], r["niche"]): r for r in _report(stack)["niches"]}
    NEW = "v-rescored/" + stack.settings.clip_spec.version  # the extractor is appended to the label
    stack.worker.stop()
    env = {**os.environ, **stack.settings.to_env()}
    for _ in range(2):  # a rerun replaces, never duplicates
        done = subprocess.run([sys.executable, "-m", "cli.main", "rescore", "--scorer-version", "v-rescored"],
                              env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        assert f"rescored {N_EVENTS} jobs as {NEW} (0 skipped)" in done.stderr.replace("\n", " ")
    stack.restart_worker()
    reader = _reader(stack)
    counts = reader.query("SELECT scorer_version, count() AS n, uniqExact(job_id) AS jobs FROM sentinel.scores FINAL "
                          "GROUP BY scorer_version ORDER BY scorer_version").to_pylist()
    assert [(c["n"], c["jobs"]) for c in counts] == [(N_EVENTS, N_EVENTS)] * 2
    assert {c["scorer_version"] for c in counts} == {stack.settings.scorer_version, NEW}
    from reports.report import benchmark
    from warehouse.window import Window

    after = benchmark(reader, stack.settings.pricing(), Window(), NEW, stack.settings.quality_config())
    assert after["quality"]["scorer_version"] == NEW
    for row in after["niches"]:
        old = before[(row["model"], row["niche"])]
        assert row["fid_images"] == old["fid_images"] == 16
        assert row["clip"] == pytest.approx(old["clip"], rel=1e-6)
        if old["fid"] is not None:
            assert row["fid"] == pytest.approx(old["fid"], rel=1e-4)


def test_bootstrap_intervals_on_stored_jobs(quality_stack) -> None:
    """The report's intervals on the real store: on the rows bootstrap_jobs.sql returns (which
    equal the published jobs, priced by hand), reproducible per seed, equal to scipy's percentile
    bootstrap of those rows with the group's generator, containing the point estimates; the
    latency quantile table equals numpy's percentiles of the events."""
    from scipy import stats

    from reports.intervals import job_samples
    from sentinel.bootstrap import BootstrapConfig, group_rng
    from reports.report import benchmark, pricing_params
    from warehouse.window import Window

    stack, events, _ = quality_stack
    version = stack.settings.scorer_version
    reader = _reader(stack)
    wait_for(lambda: reader.query("SELECT count() AS n FROM sentinel.scores FINAL WHERE scorer_version = {v:String}",
                                  {"v": version}).to_pylist()[0]["n"] == N_EVENTS, 240, "all events scored")
    pricing = stack.settings.pricing()

    def run(seed: int) -> dict:
        return benchmark(reader, pricing, Window(), version, stack.settings.quality_config(),
                         BootstrapConfig(resamples=500, seed=seed))

    report, again, other = run(3), run(3), run(4)
    keys = ("composite_ci", "cost_per_image_usd_ci", "p95_latency_ms_ci", "clip_ci")
    assert report["intervals"]["resamples"] == 500 and report["intervals"]["seed"] == 3
    for rows in ("models", "niches"):
        assert [[r[k] for k in keys] for r in report[rows]] == [[r[k] for k in keys] for r in again[rows]]
        assert [r["p95_latency_ms_ci"] for r in report[rows]] != [r["p95_latency_ms_ci"] for r in other[rows]]
    for row in report["models"] + report["niches"]:
        assert row["ci_jobs"] == row["jobs"]
        for key in ("composite", "cost_per_image_usd", "p95_latency_ms", "clip"):
            lo, hi = row[f"{key}_ci"]
            assert lo <= row[key] * (1 + 1e-12) and row[key] <= hi * (1 + 1e-12), (row["model"], key)

    def cost(e: dict) -> float:  # pricing.toml written out by hand, as in test_pipeline
        if e["provider"] == "api":
            return e["api_cost_usd"] + 0.002
        return e["gpu_seconds"] * {"A100-80GB": 1.89, "L4": 0.80}[e["gpu_type"]] / 3600 * 1.15 + 0.002

    params = {**Window().params(), **pricing_params(pricing), "scorer_version": version}
    samples = job_samples(reader, params, 10_000)
    for row in report["models"]:
        mine = [e for e in events if e["model_id"] == row["model"]]
        got = samples[(row["model"], "*")]
        lat = [(e["delivered_at"] - e["requested_at"]) / timedelta(milliseconds=1) for e in mine]
        assert sorted(got["latency"]) == sorted(lat)
        np.testing.assert_allclose(sorted(got["cost"]), sorted(cost(e) for e in mine), rtol=1e-12)
        assert np.isfinite(got["clip"]).sum() == len(mine)
        for key, data, statistic in (
                ("cost_per_image_usd_ci", got["cost"], lambda a, axis: np.mean(a, axis=axis)),
                ("p95_latency_ms_ci", got["latency"], lambda a, axis: np.percentile(a, 95, axis=axis))):
            if key.startswith("cost") and np.all(data == data[0]):
                assert row[key] == [data[0], data[0]]  # a flat API price: a degenerate interval
                continue
            ref = stats.bootstrap((data,), statistic, n_resamples=500, method="percentile", vectorized=True,
                                  rng=group_rng(3, row["model"], "*")).confidence_interval
            assert row[key] == pytest.approx([ref.low, ref.high], rel=1e-12), (row["model"], key)
        levels = np.array(report["latency_quantiles"]["levels"])
        np.testing.assert_allclose(report["latency_quantiles"]["models"][row["model"]],
                                   np.percentile(lat, levels * 100), rtol=1e-12)

    _check_significance(report, again, samples)

    capped = job_samples(reader, params, 5)
    assert {k: len(v["latency"]) for k, v in capped.items()} == {k: 5 for k in samples}
    # the hash-rate prefilter (rates from the jobs per group) selects exactly the same jobs
    counts = {(r["model"], r.get("niche", "*")): r["jobs"] for r in report["models"] + report["niches"]}
    prefiltered = job_samples(reader, params, 5, counts)
    assert set(prefiltered) == set(capped)
    for k in capped:
        for column in ("latency", "cost", "clip"):
            np.testing.assert_array_equal(prefiltered[k][column], capped[k][column])


def _check_significance(report: dict, again: dict, samples: dict) -> None:
    """Ranks on the real store: reproducible per seed; P(a better) on p95 over all traffic
    recomputed here by resampling the stored jobs with each model's generator (seed 3, 500
    draws); FID ranked where references exist (headshot, product), not in portrait."""
    from sentinel.bootstrap import group_rng

    assert report["significance"] == again["significance"]
    sig = report["significance"]
    assert set(sig["scopes"]) == {"*", "headshot", "product", "portrait"} and len(sig["statements"]) == 4
    p95 = {}
    for row in report["models"]:
        lat = samples[(row["model"], "*")]["latency"]
        idx = group_rng(3, row["model"], "*").integers(0, len(lat), (500, len(lat)))
        p95[row["model"]] = np.percentile(lat[idx], 95, axis=1)
    for p in sig["scopes"]["*"]["dimensions"]["p95_latency_ms"]["pairs"]:
        d = p95[p["b"]] - p95[p["a"]]  # lower is better
        assert p["p_a_better"] == pytest.approx((np.sum(d > 0) + 0.5 * np.sum(d == 0)) / 500, abs=1e-12)
    for niche in ("headshot", "product"):
        assert len(sig["scopes"][niche]["dimensions"]["fid"]["ranks"]) == 3
    assert "fid" not in sig["scopes"]["portrait"]["dimensions"]
    assert all(r["rank_fid"] == "–" for r in report["niches"] if r["niche"] == "portrait")


def test_cost_and_latency_breakdowns_equal_the_events(quality_stack) -> None:
    import tomllib

    from config.settings import DEFAULT_PRICING

    stack, events, _ = quality_stack
    _wait_stored(stack)
    report = _report(stack)
    prices = tomllib.loads(Path(DEFAULT_PRICING).read_text())
    fee, overhead = prices["platform_fee_usd_per_image"], prices["orchestration_overhead"]
    for row in report["cost_breakdown"]:
        mine = [e for e in events if e["model_id"] == row["model"]]
        api = mine[0]["provider"] == "api"
        compute = [0.0 if api else e["gpu_seconds"] * prices["gpu_usd_per_hour"][e["gpu_type"]] / 3600 for e in mine]
        api_price = [e["api_cost_usd"] if api else 0.0 for e in mine]
        assert row["gpu_compute_usd"] == pytest.approx(np.mean(compute), rel=1e-9, abs=1e-15)
        assert row["orchestration_usd"] == pytest.approx(np.mean(compute) * overhead, rel=1e-9, abs=1e-15)
        assert row["api_price_usd"] == pytest.approx(np.mean(api_price), rel=1e-9, abs=1e-15)
        assert row["platform_fee_usd"] == fee
        model = next(m for m in report["models"] if m["model"] == row["model"])
        assert row["cost_per_image_usd"] == pytest.approx(model["cost_per_image_usd"], rel=1e-9)
    for row in report["latency_breakdown"]:
        mine = [e for e in events if e["model_id"] == row["model"]]
        ms = lambda a, b: [(e[b] - e[a]).total_seconds() * 1000 for e in mine]  # noqa: E731
        assert row["e2e_p95_ms"] == pytest.approx(np.percentile(ms("requested_at", "delivered_at"), 95), rel=1e-9)
        assert row["queue_p95_ms"] == pytest.approx(np.percentile(ms("requested_at", "started_at"), 95), rel=1e-9)
        assert row["inference_p95_ms"] == pytest.approx(np.percentile([e["inference_ms"] for e in mine], 95), rel=1e-9)
        assert row["delivery_p95_ms"] == pytest.approx(np.percentile(ms("completed_at", "delivered_at"), 95), rel=1e-9)
        assert row["cold_start_rate"] == pytest.approx(np.mean([e["cold_start"] for e in mine]))
