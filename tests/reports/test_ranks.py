"""Per-niche Human and significance in the report: on a real chDB store (jobs and ratings
inserted directly) the niche rows carry their niche's Bradley–Terry fit or the too-few-ratings
note; and every format (terminal, Markdown, HTML, JSON, CSV) shows shared ranks and the leader
sentences of a synthetic report."""

from __future__ import annotations

import csv
import io
import json
import random
from datetime import datetime, timezone

import numpy as np
import pytest
from conftest import MODELS, make_event

from reports.ranking import add_significance
from reports.report import benchmark, csv_rows, render_html, render_markdown, render_terminal
from report_fixtures import synthetic_report
from sentinel.bootstrap import BootstrapConfig
from sentinel.composite import Anchors, CompositeWeights, QualityConfig, combine
from sentinel.cost import Pricing
from sentinel.human import PairwiseCounts, fit_bradley_terry
from warehouse.client import ClickHouseWarehouse, migrate
from warehouse.ratings import rating_rows
from warehouse.rows import job_rows

A, B, C = (m[0] for m in MODELS)
PRICING = Pricing(gpu_usd_per_hour={"A100-80GB": 1.9, "L4": 0.8, "none": 0.0})


@pytest.fixture(scope="module")
def rated_store(tmp_path_factory: pytest.TempPathFactory):
    """20 jobs per model x niche (headshot, product); ratings: headshot 40 per model pair (A >
    B > C planted), product 50 A-B and only 6 A-C (C: too few), plus 3 ratings across niches."""
    store = ClickHouseWarehouse(f"chdb://{tmp_path_factory.mktemp('ranks') / 'chdb'}")
    migrate(store)
    events = [make_event(i, seed=5, model=m, niche=n) for i, (m, n) in
              enumerate((m, n) for m in range(3) for n in (0, 1) for _ in range(20))]
    store.insert("sentinel.jobs", job_rows([(e, 0, i) for i, e in enumerate(events)]), "jobs")
    jobs = {(e["model_id"], e["niche"]): [x["job_id"] for x in events if (x["model_id"], x["niche"]) == (e["model_id"], e["niche"])]
            for e in events}
    rng, ratings = random.Random(3), []
    strength = {A: 2.0, B: 1.0, C: 0.0}

    def rate(m1: str, m2: str, niche: str, n: int, niche2: str | None = None) -> None:
        for _ in range(n):
            p1 = np.exp(strength[m1]) / (np.exp(strength[m1]) + np.exp(strength[m2]))
            winner = "a" if rng.random() < p1 else "b"
            ratings.append({"niche": niche if niche2 is None else None, "a": m1, "b": m2, "winner": winner,
                            "rating_id": f"r{len(ratings):04d}", "job_a": rng.choice(jobs[(m1, niche)]),
                            "job_b": rng.choice(jobs[(m2, niche2 or niche)]), "rater": "alice",
                            "rated_at": datetime(2026, 2, 1, tzinfo=timezone.utc)})

    for m1, m2 in ((A, B), (A, C), (B, C)):
        rate(m1, m2, "headshot", 40)
    rate(A, B, "product", 50)
    rate(A, C, "product", 6)
    rate(B, C, "headshot", 3, niche2="product")
    store.insert("sentinel.ratings", rating_rows([(r, 0, i) for i, r in enumerate(ratings)]), "ratings")
    report = benchmark(store, PRICING, quality=QualityConfig(human_min_ratings=30),
                       bootstrap=BootstrapConfig(resamples=300, seed=1))
    try:
        yield report, ratings
    finally:
        store.close()


def _counts(ratings: list[dict], niche: str | None) -> PairwiseCounts:
    c = PairwiseCounts()
    for r in ratings:
        if niche is None or r["niche"] == niche:
            c.update(r["a"], r["b"], r["winner"])
    return c


def test_niche_rows_carry_their_niche_fit_or_the_too_few_note(rated_store) -> None:
    report, ratings = rated_store
    rows = {(r["model"], r["niche"]): r for r in report["niches"]}
    headshot = fit_bradley_terry(_counts(ratings, "headshot"))
    for m in (A, B, C):
        row = rows[(m, "headshot")]
        assert row["human"] == pytest.approx(headshot.score[m], abs=1e-9)
        assert row["human_ci"] == pytest.approx([headshot.score_low[m], headshot.score_high[m]], abs=1e-9)
        assert row["human_n"] == 80 and row["human_note"] is None
        expected = combine({"fid": None, "clip": None, "human": headshot.score[m]}).composite
        assert row["composite"] == pytest.approx(expected)  # no scores stored: Human alone
    assert rows[(A, "product")]["human_n"] == 56 and rows[(B, "product")]["human_n"] == 50
    assert rows[(C, "product")]["human"] is None and rows[(C, "product")]["human_note"] == "too few ratings: n=6"
    assert rows[(C, "product")]["composite"] is None and "human" in rows[(C, "product")]["composite_missing"]
    pooled = fit_bradley_terry(_counts(ratings, None))  # the cross-niche ratings count here only
    for row in report["models"]:
        assert row["human"] == pytest.approx(pooled.score[row["model"]], abs=1e-9)
    h = report["quality"]["human"]
    assert h["min_ratings_per_niche"] == 30 and h["ratings"] == len(ratings)
    assert sum(p["n"] for p in h["niches"]["headshot"]["pairs"]) == 120
    assert {(p["model_a"], p["model_b"]): p["n"] for p in h["niches"]["product"]["pairs"]} == {(A, B): 50, (A, C): 6}
    md = render_markdown(report)
    assert f"Human ratings in product: 56; per pair {A}–{C} 6, {A}–{B} 50" in md  # pairs sorted by name
    assert "| too few ratings: n=6 |" in md


def test_human_ranks_per_niche_and_reproducible(rated_store) -> None:
    report, _ = rated_store
    sig = report["significance"]
    assert set(sig["scopes"]) == {"*", "headshot", "product"}
    human = sig["scopes"]["product"]["dimensions"]["human"]
    assert set(human["ranks"]) == {A, B}  # C has too few ratings in product: not ranked
    rows = {(r["model"], r["niche"]): r for r in report["niches"]}
    assert rows[(C, "product")]["rank_human"] == "–"
    for scope in sig["scopes"].values():
        for dim in scope["dimensions"].values():
            for p in dim["pairs"]:
                assert 0.0 <= p["p_a_better"] <= 1.0 and p["p_value"] == pytest.approx(
                    min(1.0, 2 * min(p["p_a_better"], 1 - p["p_a_better"])))
    assert len(sig["statements"]) == 3


def _with_significance() -> dict:
    """The synthetic report with planted draws: overall, api-x clearly best on composite and
    flux cheapest; headshot all equal; product flux clearly best on composite."""
    report = synthetic_report()
    rng = np.random.default_rng(0)
    best = {"*": "api-x", "headshot": None, "product": "flux<&>"}
    draws = {}
    for row in report["models"] + report["niches"]:
        scope = row.get("niche", "*")
        up = 10.0 if row["model"] == best[scope] else 0.0
        cost = {"api-x": 0.042, "flux<&>": 0.002, "sd": 0.004}[row["model"]] if scope == "*" else 0.01
        draws[(row["model"], scope)] = {"clip": rng.normal(20 + up, 0.3, 500), "cost": rng.normal(cost, 1e-4, 500),
                                        "p95": rng.normal(1000, 50, 500)}
    report["significance"] = add_significance(
        report["models"], report["niches"], report["quality"], draws, CompositeWeights(),
        Anchors(fid_best=0.0, fid_worst=1.0, clip_floor=0.0, clip_ceiling=100.0), BootstrapConfig(resamples=500))
    return report


def test_every_format_shows_shared_ranks_and_leaders() -> None:
    from rich.console import Console

    report = _with_significance()
    sig = report["significance"]
    assert sig["scopes"]["*"]["leads"] == {"api-x": ["clip", "composite"], "flux<&>": ["cost_per_image_usd"]}
    assert sig["scopes"]["headshot"]["leads"] == {}
    lead = "all traffic: api-x leads outright on CLIP and composite; flux<&> leads outright on cost per image; " \
           "no outright leader on p95 latency."
    none = "headshot: no model leads outright on any dimension (top ranks shared at 95%)."
    assert sig["statements"][:2] == [lead, none]

    console = Console(record=True, width=250)
    render_terminal(report, console)
    text = console.export_text()
    md, page = render_markdown(report), render_html(report)
    for out in (text, md):
        assert lead in out and none in out and "1–3" in out
    assert "| headshot | sd | – | 1–3 | – | 1–3 | 1–3 | 1–3 |" in md  # FID not tested, Human without draws
    assert "api-x leads outright on CLIP and composite; flux&lt;&amp;&gt; leads outright" in page
    assert "<td>1–3</td>" in page and "flux<&>" not in page
    data = json.loads(json.dumps(report, default=str))
    assert data["significance"]["scopes"]["product"]["dimensions"]["composite"]["ranks"]["flux<&>"] == [1, 1]

    rows = csv_rows(report)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))  # as `sentinel report --format csv` writes it
    writer.writeheader()
    writer.writerows(rows)
    parsed = list(csv.DictReader(io.StringIO(buf.getvalue())))
    top = next(r for r in parsed if r["model"] == "api-x" and r["niche"] == "*")
    assert top["rank_composite"] == "1" and top["leads_outright_on"] == "clip;composite"
    assert float(top["p_better_composite_vs_sd"]) == 1.0 and top["p_better_composite_vs_api-x"] == ""
    assert {r["rank_composite"] for r in parsed if r["niche"] == "headshot"} == {"1–3"}
