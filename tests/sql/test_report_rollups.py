"""The report rollups of sql/migrations/0012 on a real chDB store, against numpy recomputations
from the rows inserted here: migration 0012 backfills a store that already holds jobs and
scores; the materialized views keep the tables equal to the rows afterwards; a retried block
(same insert_deduplication_token) counts once in every one of them; and the benchmark table read
from them equals a numpy recomputation (exact p50/p95) and the event-log query
(benchmark.sql) for aligned, unaligned and sub-hour windows, guard attempts included.

chDB allows one data path per process: every test shares ONE module-scoped store and the tests
run in file order (each builds on the rows of the ones before).
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

import sql as sql_files
from reports.report import pricing_params
from reports.rollups import TWINS, benchmark_table, full_hours, hours_params, rollups_answer, tables_ready, usable
from reports.rollups import aligned
from reports.rollups import query as rollup_query
from sentinel.cost import Pricing
from warehouse.client import ClickHouseWarehouse, migrate
from warehouse.rows import job_rows, score_rows
from warehouse.window import Window

UTC = timezone.utc
T0 = datetime(2026, 5, 1, 0, 0, tzinfo=UTC)
PRICES = {"A100-80GB": 1.89, "L4": 0.8}
FEE, OVERHEAD = 0.002, 0.15
PRICING = Pricing(FEE, OVERHEAD, dict(PRICES))
MODELS = [("m-a", "self_hosted", "A100-80GB"), ("m-b", "self_hosted", "L4"), ("m-api", "api", "none")]
ALL_JOBS: list[dict] = []  # every job inserted by the tests so far
ALL_SCORES: list[dict] = []


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, monkeypatch_module):
    path: Path = tmp_path_factory.mktemp("report_rollups") / "chdb"
    warehouse = ClickHouseWarehouse(f"chdb://{path}")
    everything = sql_files.migrations
    monkeypatch_module.setattr(sql_files, "migrations", lambda: [m for m in everything() if m.version < 12])
    migrate(warehouse)  # a store as it was before 0012
    monkeypatch_module.setattr(sql_files, "migrations", everything)
    try:
        yield warehouse
    finally:
        warehouse.close()


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _jobs(n: int, seed: int, hours: int = 5, start: datetime = T0) -> list[dict]:
    """Jobs over ``hours`` hours from T0: three models (one API-priced), two niches, integer-ms
    latencies, and a guarded model's requests (``_guarded``)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        model, provider, gpu = MODELS[i % 3]
        requested = start + timedelta(milliseconds=rng.randint(0, hours * 3_600_000 - 1))
        latency = rng.randint(300, 9_000)
        out.append({
            "job_id": f"j-{seed}-{i}", "model_id": model, "model_version": "1", "provider": provider,
            "niche": ["headshot", "product"][rng.random() < 0.4], "prompt": "p", "seed": i, "reference_image": None,
            "image": b"x", "media_type": "image/webp", "requested_at": requested,
            "started_at": requested + timedelta(milliseconds=rng.randint(0, 80)),
            "completed_at": requested + timedelta(milliseconds=latency - rng.randint(5, 60)),
            "delivered_at": requested + timedelta(milliseconds=latency), "cold_start": rng.random() < 0.1,
            "cold_start_ms": rng.uniform(100, 900), "inference_ms": latency * rng.uniform(0.5, 0.9),
            "encode_ms": None if provider == "api" else rng.uniform(5, 30), "gpu_type": gpu,
            "gpu_seconds": 0.0 if provider == "api" else rng.uniform(0.5, 4),
            "api_cost_usd": 0.04 if provider == "api" else None, "node_id": "n",
        })
    return out + _guarded(n // 4, seed, hours, start)


def _guarded(n: int, seed: int, hours: int, start: datetime) -> list[dict]:
    """Requests of a guarded model as inference/guarded.py writes them: attempt k has job id
    request (k = 1) or request.ak, every attempt the request's requested_at; a failed verdict is
    discarded (delivered false) and retried up to 3 attempts; a guard error is delivered unjudged."""
    rng = random.Random(seed + 1000)
    out = []
    for i in range(n):
        request, requested = f"g-{seed}-{i}", start + timedelta(milliseconds=rng.randint(0, hours * 3_600_000 - 1))
        niche, elapsed = ["headshot", "product"][rng.random() < 0.5], 0
        for attempt in (1, 2, 3):
            elapsed += rng.randint(400, 3_000)
            error = rng.random() < 0.05
            passed = None if error else rng.random() < 0.6
            failed = [] if passed is not False else rng.sample(["blank", "resolution", "likeness"], rng.randint(1, 2))
            out.append({
                "job_id": request if attempt == 1 else f"{request}.a{attempt}", "model_id": "m-guard",
                "model_version": "2", "provider": "self_hosted", "niche": niche, "prompt": "p", "seed": i,
                "reference_image": None, "image": b"x", "media_type": "image/webp", "requested_at": requested,
                "started_at": requested, "completed_at": requested + timedelta(milliseconds=elapsed - 30),
                "delivered_at": requested + timedelta(milliseconds=elapsed), "cold_start": False, "cold_start_ms": 0.0,
                "inference_ms": 300.0, "encode_ms": 10.0, "gpu_type": "L4", "gpu_seconds": rng.uniform(0.5, 2),
                "api_cost_usd": None, "node_id": "g", "request_id": request, "attempt": attempt,
                "delivered": passed is not False, "guard_passed": passed, "guard_score": None,
                "guard_failed_checks": failed, "guard_rubric_version": f"r{attempt % 2}", "guard_scorer_version": "gs",
                "guard_ms": None if error else rng.uniform(5, 50), "guard_error": "timeout" if error else None,
            })
            if passed is not False:
                break
    return out


def _scores(jobs: list[dict], seed: int, version: str = "v1", frac: float = 0.9) -> list[dict]:
    rng = random.Random(seed)
    return [{"job_id": e["job_id"], "scorer_version": version, "model_id": e["model_id"], "niche": e["niche"],
             "scored_at": e["delivered_at"] + timedelta(milliseconds=rng.randint(1, 900)),
             "clip_prompt_score": rng.uniform(15, 35), "clip_reference_score": None, "embedding": [0.0],
             "flags": [], "requested_at": e["requested_at"]}
            for e in jobs if rng.random() < frac]


def _insert(store: ClickHouseWarehouse, jobs: list[dict], scores: list[dict], token: str) -> None:
    store.insert("sentinel.jobs", job_rows([(e, 0, k) for k, e in enumerate(jobs)]), f"{token}-jobs")
    store.insert("sentinel.scores", score_rows(scores), f"{token}-scores")


def _hour(e: dict) -> datetime:
    return e["requested_at"].replace(minute=0, second=0, microsecond=0)


def _at(value) -> datetime:
    """A DateTime column's value (Arrow gives epoch seconds for DateTime) as an aware datetime."""
    return datetime.fromtimestamp(value, UTC) if isinstance(value, int) else value.replace(tzinfo=UTC)


def _check_cells(store: ClickHouseWarehouse) -> None:
    """Every rollup table equals a recomputation from ALL_JOBS / ALL_SCORES."""
    want: dict = {}
    for e in ALL_JOBS:
        c = want.setdefault((_hour(e), e["model_id"], e["niche"]), [0, 0, 0.0])
        c[0] += 1
        c[1] += e.get("delivered", True)
        c[2] += e["gpu_seconds"]
    got = store.query("SELECT hour, model_id, niche, sum(attempts) AS a, sum(delivered) AS d, sum(gpu_seconds) AS g "
                      "FROM sentinel.report_jobs_hourly GROUP BY hour, model_id, niche").to_pylist()
    assert {(_at(r["hour"]), r["model_id"], r["niche"]): (r["a"], r["d"]) for r in got} == \
        {k: (v[0], v[1]) for k, v in want.items()}
    for r in got:
        assert r["g"] == pytest.approx(want[(_at(r["hour"]), r["model_id"], r["niche"])][2], rel=1e-12)
    by_job = {e["job_id"]: e for e in ALL_JOBS}
    want_s: dict = {}
    for s in ALL_SCORES:
        c = want_s.setdefault((_hour(by_job[s["job_id"]]), s["model_id"], s["niche"], s["scorer_version"]), [0, 0.0])
        c[0] += 1
        c[1] += s["clip_prompt_score"]
    got_s = store.query("SELECT hour, model_id, niche, scorer_version, sum(scores) AS n, sum(clip_sum) AS c "
                        "FROM sentinel.report_scores_hourly WHERE placed GROUP BY ALL").to_pylist()
    assert {(_at(r["hour"]), r["model_id"], r["niche"], r["scorer_version"]): r["n"] for r in got_s} == \
        {k: v[0] for k, v in want_s.items()}
    for r in got_s:
        assert r["c"] == pytest.approx(want_s[(_at(r["hour"]), r["model_id"], r["niche"],
                                               r["scorer_version"])][1], rel=1e-12)
    hist = store.query("SELECT model_id, niche, toUnixTimestamp(month) AS month, latency_ms, sum(n) AS n "
                       "FROM sentinel.report_latency_monthly GROUP BY ALL").to_pylist()
    want_h: dict = {}
    for e in ALL_JOBS:
        if e.get("delivered", True):
            key = (e["model_id"], e["niche"], int(e["requested_at"].replace(day=1, hour=0, minute=0, second=0,
                                                                          microsecond=0).timestamp()),
                   (e["delivered_at"] - e["requested_at"]) / timedelta(milliseconds=1))
            want_h[key] = want_h.get(key, 0) + 1
    assert {(r["model_id"], r["niche"], r["month"], r["latency_ms"]): r["n"] for r in hist} == want_h
    counts = store.query("SELECT (SELECT count() FROM sentinel.report_jobs) AS jobs, "
                         "(SELECT count() FROM sentinel.report_scores) AS scores, "
                         "(SELECT groupArraySorted(100000)(job_id) FROM sentinel.report_jobs WHERE NOT delivered) AS discarded, "
                         "(SELECT groupArraySorted(100000)(job_id) FROM sentinel.report_jobs WHERE guard_related) AS guarded"
                         ).to_pylist()[0]
    assert counts["jobs"] == len(ALL_JOBS) and counts["scores"] == len(ALL_SCORES)
    assert counts["discarded"] == sorted(e["job_id"] for e in ALL_JOBS if not e.get("delivered", True))
    assert counts["guarded"] == sorted(e["job_id"] for e in ALL_JOBS if e["model_id"] == "m-guard")


def test_migration_0012_backfills_a_store_that_has_jobs_and_scores(store: ClickHouseWarehouse) -> None:
    jobs = _jobs(900, seed=1)
    scores = _scores(jobs, seed=1)
    for s in scores:
        del s["requested_at"]  # rows stored before 0012 have no requested_at column
    store.insert("sentinel.jobs", job_rows([(e, 0, k) for k, e in enumerate(jobs)]), "before-jobs")
    store.insert("sentinel.scores", score_rows(scores).drop(["requested_at"]), "before-scores")
    assert migrate(store)[:1] == [12]  # and any later migrations
    ALL_JOBS.extend(jobs)
    ALL_SCORES.extend(scores)
    _check_cells(store)


def test_views_keep_the_rollups_equal_and_a_retried_block_counts_once(store: ClickHouseWarehouse) -> None:
    jobs = _jobs(700, seed=2) + _jobs(150, seed=3, hours=3, start=T0 - timedelta(hours=3)) \
        + _jobs(150, seed=4, hours=3, start=T0 + timedelta(days=31))  # April 30 evening, June 1 (a month edge)
    scores = _scores(jobs, seed=2)
    _insert(store, jobs, scores, "batch-2")
    _insert(store, jobs, scores, "batch-2")  # the worker retrying the same batch: same tokens
    ALL_JOBS.extend(jobs)
    ALL_SCORES.extend(scores)
    _check_cells(store)


def _expected(window: Window, version: str) -> dict[tuple[str, str], dict]:
    """The benchmark table recomputed in numpy from the inserted rows (the definitions of
    benchmark.sql: delivered images; each job's latest score of the version(s); every
    attempt's cost / delivered images; p50/p95 = numpy's linear percentile)."""
    latest: dict = {}
    for s in ALL_SCORES:
        if version in ("", s["scorer_version"]) and (s["job_id"] not in latest or s["scored_at"] > latest[s["job_id"]]["scored_at"]):
            latest[s["job_id"]] = s
    rows: dict = {}
    for e in ALL_JOBS:
        if not window.start <= e["requested_at"] < window.end:
            continue
        for key in ((e["model_id"], "*"), (e["model_id"], e["niche"])):
            g = rows.setdefault(key, {"cost": 0.0, "lat": [], "clip": []})
            g["cost"] += (e["api_cost_usd"] + FEE if e["provider"] == "api"
                          else e["gpu_seconds"] * PRICES[e["gpu_type"]] / 3600 * (1 + OVERHEAD) + FEE)
            if e.get("delivered", True):
                g["lat"].append((e["delivered_at"] - e["requested_at"]) / timedelta(milliseconds=1))
                if e["job_id"] in latest:
                    g["clip"].append(latest[e["job_id"]]["clip_prompt_score"])
    return {k: {"jobs": len(g["lat"]), "scored": len(g["clip"]),
                "clip": float(np.mean(g["clip"])) if g["clip"] else math.nan,
                "p50_latency_ms": float(np.percentile(g["lat"], 50)) if g["lat"] else math.nan,
                "p95_latency_ms": float(np.percentile(g["lat"], 95)) if g["lat"] else math.nan,
                "cost_per_image_usd": g["cost"] / len(g["lat"]) if g["lat"] else None} for k, g in rows.items()}


WINDOWS = [
    Window(),  # all time
    Window(T0, T0 + timedelta(hours=5)),  # aligned
    Window(T0 + timedelta(minutes=17, milliseconds=3), T0 + timedelta(hours=3, minutes=41)),  # partial edges
    Window(T0 + timedelta(hours=2, minutes=5), T0 + timedelta(hours=2, minutes=50)),  # inside one hour
    Window(T0 + timedelta(hours=1, minutes=30), T0 + timedelta(hours=2, minutes=30)),  # two partial hours, no full one
    Window(T0 - timedelta(hours=2, minutes=10), T0 + timedelta(days=31, hours=1, seconds=7)),  # May whole + edges
]


def _same(got: dict, want: dict, exact_floats: bool) -> None:
    for key in ("jobs", "scored"):
        assert got[key] == want[key], key
    for key in ("clip", "p50_latency_ms", "p95_latency_ms", "cost_per_image_usd"):
        g, w = got[key], want[key]
        if w is None or (isinstance(w, float) and math.isnan(w)):
            assert g is None or math.isnan(g), key
        elif exact_floats and key.startswith("p"):
            assert g == w, key  # exact quantiles: the same value, not an approximation
        else:
            assert g == pytest.approx(w, rel=1e-11), key


@pytest.mark.parametrize("version", ["", "v1"])
@pytest.mark.parametrize("window", WINDOWS, ids=["all", "aligned", "edges", "sub-hour", "no-full-hour", "month"])
def test_benchmark_table_equals_numpy_and_the_event_log_query(store: ClickHouseWarehouse, window: Window,
                                                              version: str) -> None:
    params = {**window.params(), **pricing_params(PRICING), "scorer_version": version}
    assert rollups_answer(store, {**params, **hours_params(window)})
    fast = {(r["model"], r["niche"]): r for r in benchmark_table(store, window, params).to_pylist()}
    raw = {(r["model"], r["niche"]): r for r in store.query(sql_files.report("benchmark"), params).to_pylist()}
    want = _expected(window, version)
    assert set(fast) == set(raw) == set(want)
    for key, row in fast.items():
        _same(row, want[key], exact_floats=True)
        _same(row, {**raw[key]}, exact_floats=True)
        assert (row["model_version"], row["provider"]) == (raw[key]["model_version"], raw[key]["provider"])


def _rows_equal(raw: list[dict], twin: list[dict]) -> None:
    """Same rows in the same order; floats equal up to summation order (1e-11 relative), and
    quantiles (any *_ms or latency value) exactly equal."""
    assert len(raw) == len(twin)
    for a, b in zip(raw, twin):
        assert a.keys() == b.keys()
        for key, x in a.items():
            y = b[key]
            if isinstance(x, float) and isinstance(y, float) and not (math.isnan(x) and math.isnan(y)):
                assert y == (x if "ms" in key or "latency" in key else pytest.approx(x, rel=1e-11)), key
            elif isinstance(x, list) and x and isinstance(x[0], float):
                assert y == x, key  # the latency CDF's 101 exact quantiles
            elif not (isinstance(x, float) and math.isnan(x)):
                assert y == x, key


@pytest.mark.parametrize("name", [t for t in TWINS if t != "benchmark"])
@pytest.mark.parametrize("window", WINDOWS, ids=["all", "aligned", "edges", "sub-hour", "no-full-hour", "month"])
def test_every_rollup_twin_gives_the_event_log_query_rows(store: ClickHouseWarehouse, name: str, window: Window) -> None:
    from reports.intervals import rate_params

    params = {**window.params(), **pricing_params(PRICING), "scorer_version": ""}
    if name == "bootstrap_jobs":  # a small sample cap, so that the hash prefilter and ranks matter
        counts = {(r["model"], r["niche"]): r["jobs"] for r in benchmark_table(store, window, params).to_pylist()}
        params.update(max_jobs=40, **rate_params(counts, 40))
    assert tables_ready(store)
    raw = store.query(sql_files.report(name), params).to_pylist()
    twin = store.query(sql_files.report(f"{name}_rollup"), aligned(params)).to_pylist()
    assert raw or name.startswith("guard")  # guard rows only where the window holds guarded requests
    _rows_equal(raw, twin)
    _rows_equal(twin, rollup_query(store, name, params).to_pylist())  # and the report picks the twin


def test_full_hours_of_a_window() -> None:
    h = timedelta(hours=1)
    assert full_hours(Window(T0, T0 + 5 * h)) == (T0, T0 + 5 * h)
    assert full_hours(Window(T0 + timedelta(minutes=1), T0 + 5 * h - timedelta(seconds=1))) == (T0 + h, T0 + 4 * h)
    assert full_hours(Window(T0 + timedelta(minutes=1), T0 + h + timedelta(minutes=1))) == (T0 + h + timedelta(minutes=1),) * 2


def test_a_second_scorer_version_or_an_unplaced_score_sends_the_report_to_the_event_log(store: ClickHouseWarehouse) -> None:
    """A rescore under v2 of some jobs: each job's latest score may now be either version, which
    the hourly cells cannot tell, so '' reads the event log (and still matches numpy); naming a
    version keeps the rollups. A score stored without requested_at does the same for its version."""
    rescored = _scores(ALL_JOBS[:300], seed=9, version="v2", frac=0.5)
    store.insert("sentinel.scores", score_rows(rescored), "rescore-v2")
    ALL_SCORES.extend(rescored)
    window = WINDOWS[1]
    for version, answers in (("", False), ("v1", True), ("v2", True)):
        params = {**window.params(), **pricing_params(PRICING), "scorer_version": version}
        assert rollups_answer(store, {**params, **hours_params(window)}) is answers
        got = {(r["model"], r["niche"]): r for r in benchmark_table(store, window, params).to_pylist()}
        want = _expected(window, version)
        assert set(got) == set(want)
        for key, row in got.items():
            _same(row, want[key], exact_floats=True)
    legacy = _scores(ALL_JOBS[300:310], seed=10, version="v3")
    for s in legacy:
        s["requested_at"] = None
    store.insert("sentinel.scores", score_rows(legacy), "legacy-v3")
    params = {**window.params(), **pricing_params(PRICING), "scorer_version": "v3"}
    assert not rollups_answer(store, {**params, **hours_params(window)})


def test_a_job_stored_again_in_a_new_batch_sends_the_report_to_the_event_log(store: ClickHouseWarehouse) -> None:
    """A re-delivered first copy stored again after a crash (same rows, a new batch and token):
    sentinel.jobs/scores FINAL collapse it, the rollups would count it twice; so the twins that
    read it are declined (a score again: those reading scores; a job again: all) and the numbers
    stay numpy's."""
    window = WINDOWS[1]
    params = {**window.params(), **pricing_params(PRICING), "scorer_version": "v1"}
    assert usable(store, params) == {"jobs": True, "scores": True, "benchmark": True}
    scores_again = [x for x in ALL_SCORES if x["scorer_version"] == "v1" and x.get("requested_at")
                    and window.start <= x["requested_at"] < window.end][:20]
    store.insert("sentinel.scores", score_rows(scores_again), "after-crash-scores")
    assert usable(store, params) == {"jobs": True, "scores": False, "benchmark": False}
    again = [e for e in ALL_JOBS if window.start <= e["requested_at"] < window.end][:40]
    store.insert("sentinel.jobs", job_rows([(e, 0, k) for k, e in enumerate(again)]), "after-crash-jobs")
    assert usable(store, params) == {"jobs": False, "scores": False, "benchmark": False}
    got = {(r["model"], r["niche"]): r for r in benchmark_table(store, window, params).to_pylist()}
    want = _expected(window, "v1")
    assert set(got) == set(want)
    for key, row in got.items():
        _same(row, want[key], exact_floats=True)
    assert usable(store, {**params, **Window(T0 + timedelta(days=31), T0 + timedelta(days=32)).params()})["jobs"]
