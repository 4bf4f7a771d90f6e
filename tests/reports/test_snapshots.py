"""Benchmark snapshots on a real chDB store (reports/snapshots.py, sql/migrations/0010): the
stored rows equal the report JSON of the same window, taking a window again adds no rows, the
report's trend reads them back, and the scheduled windows are the last closed periods."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from reports.report import benchmark
from reports.snapshots import VALUES, due_windows, take_due, take_snapshot
from sentinel.bootstrap import BootstrapConfig
from sentinel.composite import QualityConfig
from sentinel.cost import Pricing
from sentinel.reference import build_reference
from warehouse import references
from warehouse.client import ClickHouseWarehouse, migrate
from warehouse.moments import MomentInput, MomentStates
from warehouse.ratings import rating_rows
from warehouse.rows import job_rows, score_rows
from warehouse.window import Window

UTC = timezone.utc
T0 = datetime(2026, 6, 1, tzinfo=UTC)
V = "v1/tiny:seed0"
PRICING = Pricing(0.002, 0.15, {"L4": 0.8, "A100-80GB": 1.89})
MODELS = ["m-a", "m-b", "m-api"]


def _jobs(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        api = i % 3 == 2
        requested = T0 + timedelta(seconds=rng.randint(0, 3 * 3600 - 1))
        latency = rng.lognormvariate(7, 0.5)
        out.append({
            "job_id": f"s-{i}", "model_id": MODELS[i % 3], "model_version": "1", "provider": "api" if api else "self_hosted",
            "niche": ["headshot", "product"][(i // 3) % 2], "prompt": "p", "seed": i, "reference_image": None,
            "image": b"x", "media_type": "image/webp", "requested_at": requested, "started_at": requested,
            "completed_at": requested + timedelta(milliseconds=latency - 5),
            "delivered_at": requested + timedelta(milliseconds=latency), "cold_start": False, "cold_start_ms": 0.0,
            "inference_ms": latency, "encode_ms": 1.0, "gpu_type": "none" if api else ["A100-80GB", "L4"][i % 2],
            "gpu_seconds": 0.0 if api else rng.uniform(0.5, 4), "api_cost_usd": 0.04 if api else None, "node_id": "n",
        })
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    warehouse = ClickHouseWarehouse(f"chdb://{tmp_path_factory.mktemp('snapshots') / 'chdb'}")
    migrate(warehouse)
    jobs = _jobs(600, seed=3)
    rng = np.random.default_rng(0)
    emb = {j["job_id"]: rng.normal(size=8) + MODELS.index(j["model_id"]) * 0.3 for j in jobs}
    warehouse.insert("sentinel.jobs", job_rows([(e, 0, k) for k, e in enumerate(jobs)]))
    warehouse.insert("sentinel.scores", score_rows([
        {"job_id": j["job_id"], "scorer_version": V, "model_id": j["model_id"], "niche": j["niche"],
         "scored_at": j["delivered_at"], "clip_prompt_score": 20 + 5 * MODELS.index(j["model_id"]) + rng.normal(),
         "clip_reference_score": None, "embedding": emb[j["job_id"]].tolist(), "flags": []} for j in jobs]))
    MomentStates(warehouse, 3600, compact_every=4).apply(V, [  # states and tail rows
        MomentInput(j["model_id"], j["niche"], j["requested_at"], 0, k, emb[j["job_id"]].tolist())
        for k, j in enumerate(jobs)]).write(warehouse)
    for niche in ("headshot", "product"):
        stats = build_reference(niche, "tiny:seed0", rng.normal(size=(200, 8)), rng.normal(size=(200, 8)) * 3 + 2)
        references.store(warehouse, stats, "test")
    by_model = {m: [j for j in jobs if j["model_id"] == m] for m in MODELS}
    ratings = [({"rating_id": f"r{k}", "job_a": by_model["m-a"][k]["job_id"], "job_b": by_model["m-b"][k]["job_id"],
                 "winner": "a" if k % 3 else "b", "rater": f"rater-{k % 5}", "rated_at": T0}, 0, k) for k in range(150)]
    warehouse.insert("sentinel.ratings", rating_rows(ratings))
    try:
        yield warehouse
    finally:
        warehouse.close()


def _stored(store: ClickHouseWarehouse, window: Window) -> list[dict]:
    return store.query("SELECT * FROM sentinel.benchmark_snapshots FINAL "
                       "WHERE window_start = {start:DateTime64(3)} AND window_end = {end:DateTime64(3)} "
                       "ORDER BY model, niche", window.params()).to_pylist()


def test_snapshot_rows_equal_the_report_json_of_the_same_window(store: ClickHouseWarehouse) -> None:
    window = Window(T0 + timedelta(hours=1), T0 + timedelta(hours=2))
    assert take_snapshot(store, PRICING, window) == 3 + 6
    report = benchmark(store, PRICING, window, "", QualityConfig(), BootstrapConfig(resamples=0))
    expected = {(r["model"], "*"): r for r in report["models"]} | {(r["model"], r["niche"]): r for r in report["niches"]}
    stored = _stored(store, window)
    assert {(r["model"], r["niche"]) for r in stored} == set(expected) and len(stored) == 9
    for row in stored:
        want = expected[(row["model"], row["niche"])]
        assert row["jobs"] == want["jobs"] and row["scorer_version"] == "latest per job"
        for key in VALUES:
            assert (row[key] is None) == (want.get(key) is None), key
            if row[key] is not None:
                assert row[key] == pytest.approx(want[key], rel=1e-12), key
    # every component is there: FID (reference sets), CLIP, Human (ratings of m-a vs m-b)
    model_a = next(r for r in stored if r["model"] == "m-a" and r["niche"] == "*")
    assert None not in (model_a["fid"], model_a["clip"], model_a["human"], model_a["composite"])


def test_taking_a_window_again_adds_no_rows(store: ClickHouseWarehouse) -> None:
    window = Window(T0, T0 + timedelta(hours=1))
    take_snapshot(store, PRICING, window)
    first = _stored(store, window)
    take_snapshot(store, PRICING, window)
    store.command("OPTIMIZE TABLE sentinel.benchmark_snapshots FINAL")
    raw = store.query("SELECT count() AS n FROM sentinel.benchmark_snapshots "
                      "WHERE window_start = {start:DateTime64(3)} AND window_end = {end:DateTime64(3)}",
                      window.params()).column("n")[0].as_py()
    again = _stored(store, window)
    assert raw == len(first) == len(again) == 9
    assert [{k: v for k, v in r.items() if k != "taken_at"} for r in again] == \
        [{k: v for k, v in r.items() if k != "taken_at"} for r in first]


def test_scheduled_windows_and_the_report_trend(store: ClickHouseWarehouse) -> None:
    now = T0 + timedelta(hours=3, minutes=20)
    assert due_windows(now, 3600, 3) == [Window(T0 + timedelta(hours=h), T0 + timedelta(hours=h + 1)) for h in range(3)]
    settings = type("S", (), {"snapshot_period_s": 3600, "snapshot_lookback": 3,
                              "quality_config": staticmethod(QualityConfig)})()
    assert take_due(store, PRICING, settings, now) == 27
    report = benchmark(store, PRICING, Window(T0, T0 + timedelta(hours=3)), "", QualityConfig(),
                       BootstrapConfig(resamples=0))
    trend = report["trend"]
    assert [(r["model"], r["window_start"][:13]) for r in trend] == [
        (m, (T0 + timedelta(hours=h)).isoformat()[:13]) for m in sorted(MODELS) for h in range(3)]
    hourly = {(r["model"], r["window_start"][:13]): r["composite"] for r in trend}
    for row in _stored(store, Window(T0 + timedelta(hours=1), T0 + timedelta(hours=2))):
        if row["niche"] == "*":
            assert hourly[(row["model"], (T0 + timedelta(hours=1)).isoformat()[:13])] == row["composite"]


def test_the_html_report_charts_the_composite_over_time(store: ClickHouseWarehouse) -> None:
    """One line per model through its snapshots' composites: as many points as windows, and the
    points' heights in the order of the composites (SVG y grows downwards)."""
    import re
    import xml.etree.ElementTree as ET

    from reports.report import render_html

    take_due(store, PRICING, type("S", (), {"snapshot_period_s": 3600, "snapshot_lookback": 3,
                                            "quality_config": staticmethod(QualityConfig)})(),
             T0 + timedelta(hours=3, minutes=1))
    report = benchmark(store, PRICING, Window(T0, T0 + timedelta(hours=3)), "", QualityConfig(),
                       BootstrapConfig(resamples=0))
    page = render_html(report)
    svg = ET.fromstring(re.search(r'<svg role="img" aria-label="Composite over time.*?</svg>', page, re.S).group(0))
    ns = "{http://www.w3.org/2000/svg}"
    lines = {g.get("id"): g.find(f"{ns}path") for g in svg.iter(f"{ns}g") if (g.get("id") or "").startswith("trend-")}
    assert sorted(lines) == [f"trend-{k}" for k in range(3)]
    for k, model in enumerate(sorted(MODELS)):
        ys = [float(y) for y in re.findall(r"[ML] [0-9.]+ ([0-9.]+)", lines[f"trend-{k}"].get("d"))]
        composites = [r["composite"] for r in report["trend"] if r["model"] == model]
        assert len(ys) == len(composites) == 3
        assert sorted(range(3), key=lambda i: -ys[i]) == sorted(range(3), key=lambda i: composites[i])
