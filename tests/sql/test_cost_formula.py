"""The cost formula has one SQL definition (sql/functions.sql), equal to sentinel/cost.py.

On a real chDB store: ``sentinel_job_cost_usd`` over a grid of jobs and pricings equals
``Pricing.job_cost`` to 1e-12 relative; the report queries price each job with it; and no other
file under sql/ or deploy/ spells the formula out.
"""

from __future__ import annotations

import math
import re
import tomllib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import sql as sql_files
from reports.report import pricing_params
from sentinel.cost import Pricing, PricingError
from warehouse.client import ClickHouseWarehouse, migrate
from warehouse.rows import job_rows

ROOT = Path(sql_files.__file__).resolve().parent.parent
DEFINITION = ROOT / "sql" / "functions.sql"
UTC = timezone.utc
T0 = datetime(2026, 5, 1, 0, 0, tzinfo=UTC)

PRICINGS = [
    Pricing.from_mapping(tomllib.loads((ROOT / "pricing.toml").read_text())),
    Pricing(platform_fee_usd_per_image=0.0, orchestration_overhead=0.0,
            gpu_usd_per_hour={"L4": 0.8, "seventh": 1 / 7, "free": 0.0}),
    Pricing(platform_fee_usd_per_image=0.0123, orchestration_overhead=2.5,
            gpu_usd_per_hour={"A100-80GB": 1.89, "H100-80GB": 2.99, "odd": 3.3333333333}),
]
GPU_SECONDS = [0.0, 1e-6, 0.125, 1 / 3, 12.5, 3599.999, 7 * 86400 + 0.3]
API_COSTS = [0.0, 0.04, 1 / 3, 12.0]

# Job fields in, one cost out; the grid arrives as parallel arrays (no SQL built in Python).
GRID_COST = """
SELECT sentinel_job_cost_usd(provider, gpu_type, gpu_seconds, api_cost_usd, {gpu_types:Array(String)},
                             {gpu_prices:Array(Float64)}, {overhead:Float64}, {platform_fee:Float64}) AS cost
FROM
(
    SELECT
        arrayJoin(arrayZip(range(length({providers:Array(String)})), {providers:Array(String)},
                           {job_gpu_types:Array(String)}, {job_gpu_seconds:Array(Float64)},
                           {api_costs:Array(Nullable(Float64))})) AS job,
        job.1 AS i, job.2 AS provider, job.3 AS gpu_type, job.4 AS gpu_seconds, job.5 AS api_cost_usd
)
ORDER BY i
"""


def grid(pricing: Pricing) -> list[dict]:
    """Self-hosted jobs on every priced GPU type (fractional and zero seconds), API-priced jobs
    with and without GPU fields filled in."""
    jobs = [{"provider": "self_hosted", "gpu_type": t, "gpu_seconds": s, "api_cost_usd": None}
            for t in sorted(pricing.gpu_usd_per_hour) for s in GPU_SECONDS]
    jobs += [{"provider": "api", "gpu_type": "none", "gpu_seconds": 0.0, "api_cost_usd": c} for c in API_COSTS]
    jobs += [{"provider": "api", "gpu_type": t, "gpu_seconds": 5.0, "api_cost_usd": 0.04}
             for t in sorted(pricing.gpu_usd_per_hour)]
    return jobs


def sql_costs(store: ClickHouseWarehouse, pricing: Pricing, jobs: list[dict]) -> list[float]:
    params = {**pricing_params(pricing),
              "providers": [j["provider"] for j in jobs], "job_gpu_types": [j["gpu_type"] for j in jobs],
              "job_gpu_seconds": [j["gpu_seconds"] for j in jobs], "api_costs": [j["api_cost_usd"] for j in jobs]}
    return store.query(GRID_COST, params).column("cost").to_pylist()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    warehouse = ClickHouseWarehouse(f"chdb://{tmp_path_factory.mktemp('cost_formula') / 'chdb'}")
    migrate(warehouse)
    try:
        yield warehouse
    finally:
        warehouse.close()


@pytest.mark.parametrize("pricing", PRICINGS, ids=["pricing.toml", "no-fee-no-overhead", "high-overhead"])
def test_sql_function_equals_pricing_job_cost(store: ClickHouseWarehouse, pricing: Pricing) -> None:
    jobs = grid(pricing)
    got = sql_costs(store, pricing, jobs)
    assert len(got) == len(jobs)
    for job, cost in zip(jobs, got):
        expected = pricing.job_cost(**job)
        assert math.isclose(cost, expected, rel_tol=1e-12, abs_tol=0.0), (job, cost, expected)
    assert len({round(c, 15) for c in got}) > len(jobs) // 2  # the grid is not degenerate


def test_what_python_refuses_costs_nan_in_sql(store: ClickHouseWarehouse) -> None:
    pricing = PRICINGS[0]
    refused = [{"provider": "api", "gpu_type": "none", "gpu_seconds": 0.0, "api_cost_usd": None},
               {"provider": "self_hosted", "gpu_type": "B200", "gpu_seconds": 1.0, "api_cost_usd": None}]
    for job in refused:
        with pytest.raises(PricingError):
            pricing.job_cost(**job)
    assert all(math.isnan(c) for c in sql_costs(store, pricing, refused))  # never a silent 0


def test_report_queries_price_each_job_with_it(store: ClickHouseWarehouse) -> None:
    """bootstrap_jobs.sql (per job) and cost_breakdown.sql (per model) over stored jobs."""
    pricing = PRICINGS[0]
    jobs = [dict(j, job_id=f"cost-{i}", model_id=f"{j['provider']}-{j['gpu_type']}")
            for i, j in enumerate(grid(pricing))]
    store.insert("sentinel.jobs", job_rows([(_event(j, i), 0, i) for i, j in enumerate(jobs)]), "cost-grid")
    window = {"start": "2026-05-01 00:00:00.000", "end": "2026-05-02 00:00:00.000"}
    params = {**window, **pricing_params(pricing), "scorer_version": "", "max_jobs": len(jobs),
              "models": [], "model_rates": [], "groups": [], "group_rates": []}
    rows = store.query(sql_files.report("bootstrap_jobs"), params).to_pylist()
    assert len(rows) == len(jobs)
    for model in {j["model_id"] for j in jobs}:
        got = sorted(r["cost_usd"] for r in rows if r["model"] == model)
        expected = sorted(pricing.job_cost(**_priced(j)) for j in jobs if j["model_id"] == model)
        assert got == pytest.approx(expected, rel=1e-12), model
    for part in store.query(sql_files.report("cost_breakdown"), {**window, **pricing_params(pricing)}).to_pylist():
        mine = [pricing.job_cost(**_priced(j)) for j in jobs if j["model_id"] == part["model"]]
        assert part["cost_per_image_usd"] == pytest.approx(sum(mine) / len(mine), rel=1e-12)
        parts = part["gpu_compute_usd"] + part["orchestration_usd"] + part["platform_fee_usd"] + part["api_price_usd"]
        assert parts == pytest.approx(part["cost_per_image_usd"], rel=1e-12)


def test_migrate_restores_a_dropped_function(store: ClickHouseWarehouse) -> None:
    """Functions live on the server, outside the database and its backups: migrate re-creates them."""
    pricing, job = PRICINGS[0], grid(PRICINGS[0])[1]
    store.command("DROP FUNCTION sentinel_job_cost_usd")
    with pytest.raises(Exception, match="sentinel_job_cost_usd"):
        sql_costs(store, pricing, [job])
    assert migrate(store) == []  # no migration pending, and still ...
    assert sql_costs(store, pricing, [job]) == [pytest.approx(pricing.job_cost(**job), rel=1e-12)]


# What spelling the formula out looks like: the per-hour price turned per second, the price
# lookup, the overhead factor, the fee added, the API price with its NaN default.
SPELLINGS = {
    "per-second price": r"/\s*3600\b",
    "price lookup": r"transform\(\s*[\w.]*gpu_type\b",
    "GPU-seconds times a price": r"gpu_seconds\)?\s*\*|\*\s*[\w.]*(?:usd_per_hour|gpu_prices)",
    "overhead factor": r"1\s*\+\s*\{?[\w.]*overhead",
    "fee added": r"\+[^,;\n]*platform_fee",
    "API price": r"ifNull\(\s*[\w.]*api_cost_usd\s*,\s*nan",
}


def _code(text: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in text.splitlines())


def _sql_and_dashboards() -> list[Path]:
    return [p for d in ("sql", "deploy") for p in sorted((ROOT / d).rglob("*"))
            if p.is_file() and p.suffix in {".sql", ".json", ".yml", ".yaml"} and p != DEFINITION]


def test_only_one_file_spells_the_formula() -> None:
    definition = _code(DEFINITION.read_text())
    for name, pattern in SPELLINGS.items():
        assert re.search(pattern, definition), f"{name} is not in {DEFINITION.name}: pattern out of date"
    files = _sql_and_dashboards()
    assert len(files) > 20
    offenders = [f"{p.relative_to(ROOT)}: {name}" for p in files for name, pattern in SPELLINGS.items()
                 if re.search(pattern, p.read_text())]
    assert offenders == []


def test_every_query_given_prices_calls_the_function() -> None:
    given_prices = sorted(p.relative_to(ROOT).as_posix() for p in _sql_and_dashboards()
                          if "migrations" not in p.parts
                          and re.search(r"\{gpu_prices:|sentinel\.pricing\b", _code(p.read_text())))
    assert given_prices == ["deploy/grafana/dashboards/sentinel.json", "sql/reports/benchmark.sql",
                            "sql/reports/benchmark_rollup.sql", "sql/reports/bootstrap_jobs.sql",
                            "sql/reports/bootstrap_jobs_rollup.sql", "sql/reports/cost_breakdown.sql",
                            "sql/reports/cost_breakdown_rollup.sql", "sql/reports/guard.sql",
                            "sql/reports/guard_rollup.sql", "sql/reports/rollup_hourly.sql"]
    for path in given_prices:
        assert "sentinel_job_cost_usd(" in (ROOT / path).read_text(), path


def _priced(job: dict) -> dict:
    return {k: job[k] for k in ("provider", "gpu_type", "gpu_seconds", "api_cost_usd")}


def _event(job: dict, i: int) -> dict:
    at = T0 + timedelta(seconds=i)
    return {**job, "model_version": "1", "niche": "headshot", "prompt": "p", "seed": i, "reference_image": None,
            "image": b"x", "media_type": "image/webp", "requested_at": at, "started_at": at, "completed_at": at,
            "delivered_at": at + timedelta(milliseconds=10), "cold_start": False, "cold_start_ms": 0.0,
            "inference_ms": 1.0, "encode_ms": 1.0, "node_id": "n"}
