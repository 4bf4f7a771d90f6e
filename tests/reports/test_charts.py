"""HTML report charts (matplotlib SVG, reports/charts.py) and interval columns (the Jinja2 page,
reports/report.py), pure: no stack."""

from __future__ import annotations

import itertools
import random
import re
import xml.etree.ElementTree as ET

import pytest

from reports.charts import pareto_frontier
from reports.report import csv_rows, render_html, render_markdown
from report_fixtures import synthetic_report as _report


def _brute_force(points: list[tuple[str, float, float]]) -> set[str]:
    def dominates(a, b) -> bool:
        return a[2] >= b[2] and a[1] <= b[1] and (a[2] > b[2] or a[1] < b[1])

    return {p[0] for p in points if not any(dominates(q, p) for q in points if q is not p)}


def test_pareto_frontier_equals_brute_force() -> None:
    rng = random.Random(0)
    for trial in range(2000):
        n = rng.randint(1, 9)
        grid = rng.choice([3, 5, 1000])  # small grids force ties in cost, quality or both
        points = [(f"m{i}", rng.randint(1, grid) / 100, float(rng.randint(0, grid))) for i in range(n)]
        got = pareto_frontier(points)
        assert set(got) == _brute_force(points), points
        costs = [dict((p[0], p[1]) for p in points)[m] for m in got]
        assert costs == sorted(costs), "cheapest first"


def test_pareto_frontier_examples() -> None:
    assert pareto_frontier([("cheap", 0.002, 18.0), ("dear", 0.04, 22.0), ("worse", 0.002, 15.0)]) == ["cheap", "dear"]
    assert pareto_frontier([("a", 1.0, 5.0), ("b", 2.0, 5.0)]) == ["a"]  # same quality, dearer: dominated
    assert pareto_frontier([("a", 1.0, 5.0), ("b", 1.0, 5.0)]) == ["a", "b"]  # equal points both stay
    assert pareto_frontier([("a", float("nan"), 5.0)]) == []


def _vertices(path: ET.Element) -> int:
    """Points of an SVG path drawn by matplotlib (one M then L segments)."""
    return len(re.findall(r"[ML] ", path.get("d")))


def test_html_has_the_three_charts_and_interval_columns() -> None:
    page = render_html(_report())
    svgs = re.findall(r"<svg .*?</svg>", page, flags=re.S)
    labels = [ET.fromstring(s).get("aria-label") for s in svgs]  # each chart is well-formed XML
    assert "Quality vs cost per image, with the Pareto frontier" in labels
    assert "End-to-end latency, empirical CDF per model" in labels
    assert "Composite by niche" in labels
    ns = "{http://www.w3.org/2000/svg}"

    def groups(svg: ET.Element, prefix: str) -> list[ET.Element]:
        return [g for g in svg.iter(f"{ns}g") if (g.get("id") or "").startswith(prefix)]

    scatter = ET.fromstring(svgs[labels.index("Quality vs cost per image, with the Pareto frontier")])
    assert len(groups(scatter, "point-")) == 3
    (frontier,) = groups(scatter, "frontier")
    assert _vertices(frontier.find(f"{ns}path")) == 2  # api-x and flux<&>; sd dominated
    names = {"".join(t.itertext()).strip() for t in scatter.iter(f"{ns}text")}
    assert {"api-x", "flux<&>", "sd"} <= names
    assert "cost per image (USD, log scale)" in names  # 0.002 .. 0.042 spreads over 10x
    cdf = ET.fromstring(svgs[labels.index("End-to-end latency, empirical CDF per model")])
    lines = groups(cdf, "cdf-")
    assert len(lines) == 3 and all(_vertices(g.find(f"{ns}path")) >= 10 for g in lines)
    bars = ET.fromstring(svgs[labels.index("Composite by niche")])
    assert len(groups(bars, "bars-")) == 6  # 3 models x 2 niches
    # interval columns: value then [lo, hi] in the column's format
    assert '21.7<span class="ci"> [20.7, 23.0]</span>' in page
    assert '2,386<span class="ci"> [1,909, 3,102]</span>' in page
    assert '0.042000<span class="ci"> [0.037800, 0.046200]</span>' in page
    assert "flux&lt;&amp;&gt;" in page and "flux<&>" not in page
    # self-contained: no scripts, no external assets (references only inside the page: #ids)
    assert "<script" not in page.lower()
    assert all(ref.startswith("#") for ref in re.findall(r'(?:src|href)="([^"]*)"', page))
    assert all(ref.startswith("#") for ref in re.findall(r"url\(([^)]*)\)", page))


def test_markdown_and_csv_carry_the_intervals() -> None:
    report = _report()
    md = render_markdown(report)
    assert "| 21.7 [20.7, 23.0] |" in md and "95% percentile-bootstrap intervals" in md
    rows = csv_rows(report)
    assert rows[0]["composite_ci_lo"] == pytest.approx(21.74 - 1.04)
    assert rows[0]["p95_latency_ms_ci_hi"] == pytest.approx(2386.0 * 1.3)
    assert "composite_ci" not in rows[0]
    assert {frozenset(r) for r in rows} == {frozenset(rows[0])}, "every CSV row has the same columns"


def test_html_without_intervals_or_quality() -> None:
    report = _report()
    report["intervals"] = {"enabled": False}
    for row in report["models"] + report["niches"]:
        for key in ("composite_ci", "cost_per_image_usd_ci", "p95_latency_ms_ci", "clip_ci"):
            row[key] = None
        row["composite"] = None
    page = render_html(report)
    assert '<span class="ci">' not in page
    assert "Composite by niche" not in page and "Pareto" not in page  # nothing to plot
    assert "End-to-end latency, empirical CDF per model" in page


def test_intervals_that_miss_their_point_estimate_still_draw() -> None:
    """A capped bootstrap sample can put the point estimate outside its interval (seen on real
    traffic): drawn as it is, never an error."""
    report = _report()
    for row in report["models"] + report["niches"]:
        row["composite_ci"] = [row["composite"] + 1, row["composite"] + 2]
        row["cost_per_image_usd_ci"] = [row["cost_per_image_usd"] * 1.1, row["cost_per_image_usd"] * 1.2]
    page = render_html(report)
    assert "Quality vs cost per image" in page and "Composite by niche" in page
