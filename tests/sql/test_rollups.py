"""Hourly rollups (materialized views into AggregatingMergeTree) on a real chDB store: numbers
equal a direct recomputation from the rows inserted, and a retried batch is not counted twice."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from conftest import migrated_store

import sql as sql_files
from warehouse.rows import job_rows
from warehouse.client import ClickHouseWarehouse

UTC = timezone.utc
T0 = datetime(2026, 4, 1, 0, 0, tzinfo=UTC)
PRICES = {"A100-80GB": 1.89, "L4": 0.8}
FEE, OVERHEAD = 0.002, 0.15


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    yield from migrated_store(tmp_path_factory, "rollups")


def _jobs(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        api = i % 3 == 2
        requested = T0 + timedelta(seconds=rng.randint(0, 3 * 3600 - 1))
        latency = rng.lognormvariate(7, 0.5)
        out.append({
            "job_id": f"r-{seed}-{i}", "model_id": ["m-a", "m-b", "m-api"][i % 3], "model_version": "1",
            "provider": "api" if api else "self_hosted", "niche": ["headshot", "product"][i % 2],
            "prompt": "p", "seed": i, "reference_image": None, "image": b"x", "media_type": "image/webp",
            "requested_at": requested, "started_at": requested, "completed_at": requested + timedelta(milliseconds=latency - 5),
            "delivered_at": requested + timedelta(milliseconds=latency), "cold_start": rng.random() < 0.1,
            "cold_start_ms": 0.0, "inference_ms": latency, "encode_ms": 1.0,
            "gpu_type": "none" if api else ["A100-80GB", "L4"][i % 2], "gpu_seconds": 0.0 if api else rng.uniform(0.5, 4),
            "api_cost_usd": 0.04 if api else None, "node_id": "n",
        })
    return out


def test_rollup_equals_direct_recomputation_and_ignores_a_retried_batch(store: ClickHouseWarehouse) -> None:
    jobs = _jobs(600, seed=1)
    table = job_rows([(e, 0, k) for k, e in enumerate(jobs)])
    store.insert("sentinel.jobs", table, "rollup-batch-1")
    store.insert("sentinel.jobs", table, "rollup-batch-1")  # a retried batch: same token
    params = {"start": "2026-04-01 00:00:00.000", "end": "2026-04-02 00:00:00.000",
              "gpu_types": sorted(PRICES), "gpu_prices": [PRICES[t] for t in sorted(PRICES)],
              "overhead": OVERHEAD, "platform_fee": FEE}
    rows = store.query(sql_files.report("rollup_hourly"), params).to_pylist()
    groups: dict = {}
    for e in jobs:
        groups.setdefault((e["requested_at"].replace(minute=0, second=0, microsecond=0), e["model_id"], e["niche"]),
                          []).append(e)
    assert len(rows) == len(groups)
    for r in rows:
        hour = datetime.fromtimestamp(r["hour"], UTC) if isinstance(r["hour"], int) else r["hour"].replace(tzinfo=UTC)
        group = groups[(hour, r["model_id"], r["niche"])]
        assert r["n_jobs"] == len(group)
        assert r["n_cold_starts"] == sum(e["cold_start"] for e in group)
        costs = [(e["api_cost_usd"] + FEE) if e["provider"] == "api"
                 else e["gpu_seconds"] * PRICES[e["gpu_type"]] / 3600 * (1 + OVERHEAD) + FEE for e in group]
        assert r["cost_per_image_usd"] == pytest.approx(np.mean(costs), rel=1e-9)
        latencies = [(e["delivered_at"] - e["requested_at"]).total_seconds() * 1000 for e in group]
        p50, p95, p99 = r["latency_p50_p95_p99_ms"]
        # t-digest estimates: close to the exact quantile for these small groups
        assert p50 == pytest.approx(np.percentile(latencies, 50), rel=0.1)
        assert min(latencies) <= p95 <= max(latencies)


def _grafana(sql: str) -> str:
    """The Grafana ClickHouse macros, expanded the way the plugin does for an all-time range."""
    import re

    sql = re.sub(r"\$__timeInterval\(([^)]+)\)", r"toStartOfInterval(\1, INTERVAL 1 HOUR)", sql)
    return re.sub(r"\$__timeFilter\(([^)]+)\)",
                  r"\1 >= toDateTime('2000-01-01 00:00:00') AND \1 <= toDateTime('2100-01-01 00:00:00')", sql)


def test_every_grafana_panel_query_runs_and_cost_matches(store: ClickHouseWarehouse) -> None:
    import json

    from sentinel.cost import Pricing
    from warehouse.pricing import publish_pricing

    publish_pricing(store, Pricing(FEE, OVERHEAD, dict(PRICES)))
    guarded = _guarded_attempts(80, seed=3)
    store.insert("sentinel.jobs", job_rows([(e, 1, k) for k, e in enumerate(guarded)]), "grafana-guarded")
    root = Path(sql_files.__file__).resolve().parent.parent
    panels = json.loads((root / "deploy/grafana/dashboards/sentinel.json").read_text())["panels"]
    results = {}
    for panel in panels:
        for target in panel["targets"]:
            results[panel["title"]] = store.query(_grafana(target["rawSql"])).to_pylist()
    cost = next(rows for title, rows in results.items() if title.startswith("Cost per delivered image"))
    jobs = _jobs(600, seed=1) + guarded  # _jobs: stored by the first test of this module
    for row in cost:
        t = row["time"] if isinstance(row["time"], int) else int(row["time"].replace(tzinfo=UTC).timestamp())
        group = [e for e in jobs if e["model_id"] == row["model_id"]
                 and e["requested_at"].replace(minute=0, second=0, microsecond=0).timestamp() == t]
        expected = [(e["api_cost_usd"] + FEE) if e["provider"] == "api"
                    else e["gpu_seconds"] * PRICES[e["gpu_type"]] / 3600 * (1 + OVERHEAD) + FEE for e in group]
        delivered = sum(e.get("delivered") is not False for e in group)  # guard mode: discarded cost included
        assert row["cost_per_image_usd"] == pytest.approx(np.sum(expected) / delivered, rel=1e-9)
    assert len(cost) == 9 + 1  # 3 models x 3 hours, and the guarded model's hour
    _check_guard_panels(results, guarded)


def _guarded_attempts(n: int, seed: int) -> list[dict]:
    """Attempts of a guarded model in the first hour: verdicts, some failed checks, an outage."""
    rng = random.Random(seed)
    out = []
    for e in _jobs(n, seed=seed):
        passed = None if rng.random() < 0.1 else rng.random() < 0.7
        failed = [] if passed is not False else rng.sample(["blank", "resolution", "repeated"], rng.randint(1, 2))
        out.append({**e, "job_id": f"g-{e['job_id']}", "model_id": "m-guard", "provider": "self_hosted",
                    "gpu_type": "L4", "gpu_seconds": rng.uniform(0.5, 2), "api_cost_usd": None,
                    "requested_at": T0 + timedelta(seconds=rng.randint(0, 3599)),
                    "delivered": passed is not False, "guard_passed": passed, "attempt": 1,
                    "guard_failed_checks": None if passed is None else failed,
                    "guard_error": "timeout" if passed is None else None})
        out[-1]["started_at"] = out[-1]["completed_at"] = out[-1]["delivered_at"] = out[-1]["requested_at"]
    return out


def _check_guard_panels(results: dict, guarded: list[dict]) -> None:
    from collections import Counter

    judged = [e for e in guarded if e["guard_passed"] is not None]
    [rate] = results["Guard pass rate by model (verdicts that passed)"]
    assert rate["model_id"] == "m-guard"
    assert rate["pass_rate"] == pytest.approx(sum(e["guard_passed"] for e in judged) / len(judged), rel=1e-12)
    failures = {(r["model_id"], r["check_name"]): r["failed_attempts"]
                for r in results["Guard failures by check and model"]}
    assert failures == {("m-guard", c): n for c, n in Counter(c for e in judged for c in e["guard_failed_checks"]).items()}


def test_snapshot_panels_show_the_newest_snapshot_of_each_window(store: ClickHouseWarehouse) -> None:
    """The composite panels (benchmark snapshots) against the rows inserted here: a window taken
    twice shows its newer values once; the 'latest' panels show each row's newest window."""
    import json

    from reports.snapshots import snapshot_rows
    from warehouse.window import Window

    rng = random.Random(5)
    root = Path(sql_files.__file__).resolve().parent.parent
    panels = {p["title"]: p["targets"][0]["rawSql"]
              for p in json.loads((root / "deploy/grafana/dashboards/sentinel.json").read_text())["panels"]
              if "benchmark_snapshots" in p["targets"][0]["rawSql"]}
    assert len(panels) == 4
    final: dict = {}  # (window end, model, niche) -> the values of the newest snapshot
    for take in range(2):  # every window taken twice; the second take wins
        for h in range(3):
            window = Window(T0 + timedelta(hours=h), T0 + timedelta(hours=h + 1))
            rows = [{"model": m, "niche": n, "jobs": 10, "composite": rng.uniform(10, 90), "fid_score": rng.uniform(0, 100),
                     "clip": rng.uniform(0, 100), "human": None if m == "m-api" else rng.uniform(0, 100),
                     "cost_per_image_usd": rng.uniform(0.001, 0.05), "p95_latency_ms": rng.uniform(500, 3000)}
                    for m in ("m-a", "m-b", "m-api") for n in ("*", "headshot", "product")]
            report = {"scorer_version": "v", "models": [r for r in rows if r["niche"] == "*"],
                      "niches": [r for r in rows if r["niche"] != "*"]}
            store.insert("sentinel.benchmark_snapshots",
                         snapshot_rows(report, window, taken_at=T0 + timedelta(days=1, minutes=take)))
            final.update({(window.end, r["model"], r["niche"]): r for r in rows})

    def t(row: dict) -> datetime:
        v = row.get("time", row.get("window_end"))
        return v if v.tzinfo else v.replace(tzinfo=UTC)

    composite = store.query(_grafana(panels["Composite by model (benchmark snapshots)"])).to_pylist()
    assert [(t(r), r["model"], r["composite"]) for r in composite] == sorted(
        (e, m, v["composite"]) for (e, m, n), v in final.items() if n == "*")
    parts = store.query(_grafana(panels["Composite components by model: FID score, CLIP, Human (0-100, snapshots)"]))
    assert [(t(r), r["model"], r["fid_score"], r["clip"], r["human"]) for r in parts.to_pylist()] == sorted(
        (e, m, v["fid_score"], v["clip"], v["human"]) for (e, m, n), v in final.items() if n == "*")
    last = T0 + timedelta(hours=3)
    bars = store.query(_grafana(panels["Composite by model, latest snapshot"])).to_pylist()
    assert [(r["model"], r["composite"]) for r in bars] == sorted(
        ((m, v["composite"]) for (e, m, n), v in final.items() if n == "*" and e == last), key=lambda x: (-x[1], x[0]))
    table = store.query(_grafana(panels["Composite and components by model x niche, latest snapshot"])).to_pylist()
    assert [(r["model"], r["niche"], t(r), r["composite"], r["p95_latency_ms"]) for r in table] == sorted(
        (m, n, e, v["composite"], v["p95_latency_ms"]) for (e, m, n), v in final.items() if n != "*" and e == last)
