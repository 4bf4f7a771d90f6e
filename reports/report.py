"""The benchmark report: parameterized queries over the event log, rendered for people.

Point estimates come from ``sql/reports/benchmark.sql`` (quality columns: ``reports.quality``);
their 95% bootstrap intervals from per-job rows of ``bootstrap_jobs.sql`` (``reports.intervals``);
the latency CDF chart from ``latency_cdf.sql``. This module checks the pricing table against the
traffic, runs the queries and renders a terminal table, JSON, CSV, Markdown or a self-contained
HTML page (a Jinja2 template, ``reports/templates/report.html.j2``, with inline SVG charts drawn
by matplotlib in ``reports.charts``; no scripts or external assets).
"""

from __future__ import annotations

import math
from typing import Any

import sql as sql_files
from sentinel.composite import Anchors
from sentinel.cost import Pricing
from reports import charts
from reports.guard import add_guard_columns, guard_markdown, guard_page, guard_section, guard_terminal
from reports.intervals import add_intervals
from reports import ranks_render
from reports.ranking import add_significance
from sentinel.bootstrap import CI_KEYS, BootstrapConfig
from reports.quality import QualityConfig, add_quality, require_scorer_version
from reports import rollups
from reports.rollups import benchmark_table
from warehouse.client import Warehouse
from warehouse.window import Window


class Usd:
    """Dollar amounts as a column format (``.format(value)``): six decimals, more for amounts
    below a cent so at least three significant digits show (0.0000231, never 0.000000)."""

    def format(self, value: float) -> str:
        if value == 0 or not math.isfinite(value):
            return f"{value:.6f}"
        return f"{value:.{max(6, 2 - math.floor(math.log10(abs(value))))}f}"


USD = Usd()

COLUMNS = [  # key, header, format
    ("model", "Model", "{}"),
    ("provider", "Provider", "{}"),
    ("jobs", "Jobs", "{:,}"),
    ("fid", "FID", "{:.3f}"),
    ("cmmd", "CMMD", "{:.3f}"),
    ("clip", "CLIP (0-100)", "{:.2f}"),
    ("human", "Human (0-100)", "{:.1f}"),
    ("composite", "Composite", "{:.1f}"),
    ("p50_latency_ms", "p50 latency (ms)", "{:,.0f}"),
    ("p95_latency_ms", "p95 latency (ms)", "{:,.0f}"),
    ("cost_per_image_usd", "Cost / image (USD)", USD),
]


def pricing_params(pricing: Pricing) -> dict[str, Any]:
    types = sorted(pricing.gpu_usd_per_hour)
    return {
        "gpu_types": types,
        "gpu_prices": [pricing.gpu_usd_per_hour[t] for t in types],
        "overhead": pricing.orchestration_overhead,
        "platform_fee": pricing.platform_fee_usd_per_image,
    }


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def benchmark(reader: Warehouse, pricing: Pricing, window: Window = Window(), scorer_version: str = "",
              quality: QualityConfig = QualityConfig(),
              bootstrap: BootstrapConfig = BootstrapConfig()) -> dict[str, Any]:
    """The report as plain data (the JSON format's shape): per model and per model x niche the
    point estimates, their bootstrap intervals (``reports.intervals``) and, per model, the
    latency distribution (101 exact quantiles) behind the HTML's CDF chart. A ``scorer_version``
    with no stored scores raises UnknownScorerVersion naming the stored ones."""
    require_scorer_version(reader, scorer_version)
    gpu_types = reader.query(sql_files.report("gpu_types"), window.params()).column("gpu_type").to_pylist()
    pricing.require_gpu_types(gpu_types)
    params = {**window.params(), **pricing_params(pricing), "scorer_version": scorer_version}
    params["rollups"] = use = rollups.usable(reader, params)  # which queries read the 0012 rollups
    table = benchmark_table(reader, window, params)
    rows = [{k: _clean(v) for k, v in row.items()} for row in table.to_pylist()]
    models = [{k: v for k, v in r.items() if k != "niche"} for r in rows if r["niche"] == "*"]
    niches = [r for r in rows if r["niche"] != "*"]
    fid_inputs: dict = {}
    section = add_quality(reader, window, models, niches, scorer_version, quality, fid_inputs)
    clip_anchor = Anchors(fid_best=0.0, fid_worst=1.0, clip_floor=quality.clip_floor, clip_ceiling=quality.clip_ceiling)
    draws: dict = {}
    intervals = add_intervals(reader, params, models, niches, section, quality.weights, clip_anchor, bootstrap, draws)
    significance = add_significance(models, niches, section, draws, quality.weights, clip_anchor, bootstrap,
                                    fid_inputs if quality.fid_significance else None)
    cdf = rollups.query(reader, "latency_cdf", {**window.params(), "rollups": use}).to_pylist()
    cost_parts = rollups.query(reader, "cost_breakdown", {**window.params(), **pricing_params(pricing), "rollups": use})
    latency_parts = rollups.query(reader, "latency_breakdown", {**window.params(), "rollups": use})
    report = {
        "window": {"from": window.start.isoformat(), "to": window.end.isoformat(),
                   "all_time": window == Window()},
        "scorer_version": scorer_version or "latest per job",
        "quality": section,
        "weights": section["weights"],
        "pricing": {
            "platform_fee_usd_per_image": pricing.platform_fee_usd_per_image,
            "orchestration_overhead": pricing.orchestration_overhead,
            "gpu_usd_per_hour": dict(pricing.gpu_usd_per_hour),
        },
        "intervals": intervals,
        "significance": significance,
        "models": models,
        "niches": niches,
        "cost_breakdown": [{k: _clean(v) for k, v in r.items()} for r in cost_parts.to_pylist()],
        "latency_breakdown": [{k: _clean(v) for k, v in r.items()} for r in latency_parts.to_pylist()],
        "latency_quantiles": {"levels": [i / 100 for i in range(101)],
                              "models": {r["model"]: r["latency_ms"] for r in cdf}},
        "trend": trend(reader, window),
        "guard": guard_section(reader, {**window.params(), **pricing_params(pricing), "rollups": use}),  # None: unguarded
    }
    add_guard_columns(report)
    return report


def trend(reader: Warehouse, window: Window) -> list[dict[str, Any]]:
    """Stored benchmark snapshots (reports/snapshots.py) of windows ending within ``window``, per
    model: the composite and its components over time ([] when the store has no snapshot table)."""
    if not reader.query(sql_files.report("snapshot_table")).column("n")[0].as_py():
        return []
    rows = reader.query(sql_files.report("snapshot_trend"), window.params()).to_pylist()
    return [{k: v.isoformat() if hasattr(v, "isoformat") else _clean(v) for k, v in r.items() if k != "niche"}
            for r in rows]


def quality_notes(report: dict[str, Any]) -> list[str]:
    """How the quality columns were computed: weights, anchors, references, human ratings."""
    q = report.get("quality") or {}
    w = q.get("weights", {})
    lines = [f"Composite = {w.get('fid', 0):.2f}·FID_score + {w.get('clip', 0):.2f}·CLIP_score + "
             f"{w.get('human', 0):.2f}·Human (each 0-100; a missing component renormalizes the others). "
             f"CLIP_score maps CLIP {q.get('clip_range', {}).get('floor', 0):g}..{q.get('clip_range', {}).get('ceiling', 100):g} "
             f"to 0..100. FID/CMMD scorer version: {q.get('scorer_version') or 'none (no feature moments yet)'}."]
    refs = q.get("references") or {}
    if refs:
        lines.append("FID anchors (FID_score 100 at fid_best = reference half vs half, 0 at fid_worst = noise vs "
                     "reference): " + "; ".join(f"{n}: n={r['n']}, best {r['fid_best']:.4g}, worst {r['fid_worst']:.4g}"
                                                for n, r in refs.items()))
    else:
        lines.append("No reference sets for this extractor: FID, CMMD and FID_score are empty "
                     "(build them with `sentinel reference build NICHE DIR`).")
    h = q.get("human") or {}
    if h.get("fit"):
        label = " — SIMULATED raters (demo), not human judgments" if h.get("simulated") else ""
        lines.append(f"Human: Bradley–Terry (Davidson ties) over {h.get('ratings', 0):,} pairwise ratings from "
                     f"{h.get('raters', 0)} raters{label}; 0-100 = expected score vs the average model, "
                     f"{h['fit']['level']:.0%} Wald intervals. Per model: one fit over all ratings; per model x niche: "
                     f"one fit per niche, shown only with at least {h.get('min_ratings_per_niche', 0)} of the model's "
                     "ratings in the niche (else 'too few ratings: n=..').")
    else:
        lines.append("Human: no pairwise ratings in this window (composite renormalized without it).")
    lines += ranks_render.human_pairs_notes(report)
    lines.append(interval_note(report))
    lines.append(ranks_render.note(report))
    return lines


def interval_note(report: dict[str, Any]) -> str:
    """What the [lo, hi] next to composite, cost and p95 are."""
    iv = report.get("intervals") or {}
    if not iv.get("enabled"):
        return "No confidence intervals (bootstrap_resamples = 0)."
    return (f"[lo, hi] = {iv['level']:.0%} percentile-bootstrap intervals, {iv['resamples']:,} resamples, seed "
            f"{iv['seed']}: jobs resampled with replacement per row (at most {iv['max_jobs_per_group']:,} jobs per "
            "row, a fixed hash sample; ci_jobs in JSON) for cost, p95 latency and CLIP. The composite's interval "
            "covers CLIP (by job) and Human (its Bradley–Terry log-strength drawn from N(theta, se)); FID is "
            "held at its point estimate, so it is conditional on FID.")


def _window_text(report: dict[str, Any]) -> str:
    w = report["window"]
    return "all traffic" if w.get("all_time") else f"{w['from']} → {w['to']} (end exclusive)"


def _fmt(fmt: str, value: Any) -> str:
    return "–" if value is None else fmt.format(value)


ROW_CI_KEYS = {**CI_KEYS, "human": "human_ci"}  # human_ci: the Bradley–Terry fit's Wald interval


def _ci_text(fmt: str, row: dict[str, Any], key: str) -> str:
    """'[lo, hi]' of the row's interval for ``key`` in the column's format, '' when none."""
    ci = row.get(ROW_CI_KEYS[key]) if key in ROW_CI_KEYS else None
    return "" if not ci or row.get(key) is None else f"[{fmt.format(ci[0])}, {fmt.format(ci[1])}]"


def _fmt_ci(fmt: str, row: dict[str, Any], key: str) -> str:
    """The value and, where the row has one, its interval: '21.7 [20.1, 23.0]'."""
    ci = _ci_text(fmt, row, key)
    return _cell(fmt, row, key) + (f" {ci}" if ci else "")


def _cell(fmt: str, row: dict[str, Any], key: str) -> str:
    """The value in the column's format; a Human without enough ratings says so."""
    if key == "human" and row.get("human") is None and row.get("human_note"):
        return str(row["human_note"])
    return _fmt(fmt, row.get(key))


TERMINAL_COLUMNS = [  # narrow enough for an 80-column terminal; JSON/HTML/Markdown carry all columns
    ("model", "Model", "{}"),
    ("jobs", "Jobs", "{:,}"),
    ("fid", "FID", "{:.4f}"),
    ("clip", "CLIP", "{:.1f}"),
    ("human", "Human", "{:.1f}"),
    ("composite", "Comp.", "{:.1f}"),
    ("p95_latency_ms", "p95 ms", "{:,.0f}"),
    ("cost_per_image_usd", "$/image", USD),
]


def render_terminal(report: dict[str, Any], console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    for title, rows, cols in (
            ("Sentinel Stream benchmark — per model", report["models"], TERMINAL_COLUMNS),
            ("per model x niche (Human fitted per niche)", report["niches"],
             TERMINAL_COLUMNS[:1] + [("niche", "Niche", "{}")] + TERMINAL_COLUMNS[2:])):
        table = Table(title=title, title_justify="left")
        for key, header, _ in cols:
            table.add_column(header, justify="left" if key in ("model", "niche") else "right",
                             no_wrap=True)
        for row in rows:
            table.add_row(*[_cell(fmt, row, key) for key, _, fmt in cols])
        console.print(table)
    ranks_render.render_terminal(report, console)
    guard_terminal(report, console)
    for line in quality_notes(report):
        console.print(line, highlight=False)
    p = report["pricing"]
    console.print(f"window {_window_text(report)}; scorer {report['scorer_version']}; "
                  f"pricing: fee {p['platform_fee_usd_per_image']}/image, overhead {p['orchestration_overhead']:.0%}, "
                  "GPU $/h " + ", ".join(f"{gpu} {price:g}" for gpu, price in sorted(p["gpu_usd_per_hour"].items())))


COST_COLUMNS = [
    ("model", "Model", "{}"),
    ("gpu_seconds_per_image", "GPU-s / image", "{:.3f}"),
    ("gpu_compute_usd", "GPU compute (USD)", USD),
    ("orchestration_usd", "Orchestration (USD)", USD),
    ("platform_fee_usd", "Platform fee (USD)", USD),
    ("api_price_usd", "API price (USD)", USD),
    ("cost_per_image_usd", "Cost / image (USD)", USD),
]
LATENCY_COLUMNS = [
    ("model", "Model", "{}"),
    ("cold_start_rate", "Cold starts", "{:.1%}"),
    ("e2e_p95_ms", "End to end p95", "{:,.0f}"),
    ("queue_p95_ms", "Queue p95", "{:,.0f}"),
    ("cold_start_p95_ms", "Cold start p95", "{:,.0f}"),
    ("inference_p95_ms", "Inference p95", "{:,.0f}"),
    ("encode_p95_ms", "Encode p95", "{:,.0f}"),
    ("delivery_p95_ms", "Delivery p95", "{:,.0f}"),
]


def pricing_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The pricing in force as table rows: each GPU type's $/hour, then the overhead and fee."""
    p = report["pricing"]
    rows = [{"item": f"GPU {gpu} ($/hour)", "value": f"{price:g}"} for gpu, price in sorted(p["gpu_usd_per_hour"].items())]
    return rows + [{"item": "orchestration overhead (of GPU compute)", "value": f"{p['orchestration_overhead']:.0%}"},
                   {"item": "platform fee ($/image)", "value": f"{p['platform_fee_usd_per_image']:g}"}]


PRICING_COLUMNS = [("item", "Pricing", "{}"), ("value", "", "{}")]


def render_markdown(report: dict[str, Any]) -> str:
    def table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> list[str]:
        lines = ["| " + " | ".join(h for _, h, _ in columns) + " |",
                 "|" + "|".join("---" if i < 2 else "---:" for i in range(len(columns))) + "|"]
        lines += ["| " + " | ".join(_fmt_ci(fmt, r, k) for k, _, fmt in columns) + " |" for r in rows]
        return lines

    niche_cols = COLUMNS[:1] + [("niche", "Niche", "{}")] + COLUMNS[2:]
    out = ["# Sentinel Stream benchmark", "",
           f"Window {_window_text(report)}; scorer {report['scorer_version']}. "
           "Latency is requested → delivered, cold starts included.", "",
           *table(pricing_rows(report), PRICING_COLUMNS), "",
           "## Per model", "", *table(report["models"], COLUMNS), "",
           "## Per model and niche", "", *table(report["niches"], niche_cols), "",
           "## Cost per image, by part", "", *table(report.get("cost_breakdown", []), COST_COLUMNS), "",
           "## Latency by part (ms, exact quantiles)", "", *table(report.get("latency_breakdown", []), LATENCY_COLUMNS), "",
           *ranks_render.markdown(report),
           *guard_markdown(report),
           "## How quality is computed", "", *[f"- {line}" for line in quality_notes(report)], ""]
    return "\n".join(out)


def csv_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per model (niche "*") and per model x niche, for CSV."""
    def flat(row: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in row.items():
            if k.endswith("_ci"):  # [lo, hi] -> two columns
                out[f"{k}_lo"], out[f"{k}_hi"] = v if v else (None, None)
            else:
                out[k] = ";".join(v) if isinstance(v, list) else v
        return out

    return [flat({"niche": "*", **r, **ranks_render.csv_columns(report, r)}) for r in report["models"]] + \
        [flat({**r, **ranks_render.csv_columns(report, r)}) for r in report["niches"]]


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str, Any]]) -> dict[str, Any]:
    """A table for the page template: headers, and per row (text, interval text) per column."""
    return {"headers": [h for _, h, _ in columns],
            "rows": [[(_cell(fmt, r, k), _ci_text(fmt, r, k)) for k, _, fmt in columns] for r in rows]}


def _ranks(report: dict[str, Any]) -> dict[str, Any] | None:
    """The ranks and significance section for the template (None when disabled)."""
    if not (report.get("significance") or {}).get("enabled"):
        return None

    def plain(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> dict[str, Any]:
        return {"headers": [h for _, h, _ in columns],
                "rows": [[(str(r.get(k, "–")), "") for k, _, _ in columns] for r in rows]}

    return {"note": ranks_render.note(report), "statements": ranks_render.statements(report),
            "ranks": plain(ranks_render.rank_rows(report), ranks_render.RANK_COLUMNS),
            "pairs": plain(ranks_render.pair_rows(report), ranks_render.PAIR_COLUMNS)}


_TEMPLATES: Any = None


def _template() -> Any:
    """The page template (reports/templates/report.html.j2, package data), autoescaped."""
    global _TEMPLATES
    if _TEMPLATES is None:
        from jinja2 import Environment, PackageLoader, StrictUndefined

        _TEMPLATES = Environment(loader=PackageLoader("reports", "templates"), autoescape=True,
                                 trim_blocks=True, lstrip_blocks=True, undefined=StrictUndefined)
    return _TEMPLATES.get_template("report.html.j2")


def html_charts(report: dict[str, Any]) -> list[str]:
    """The page's charts as inline SVG (reports/charts.py), in page order; empty ones left out."""
    colors = charts.model_colors([r["model"] for r in report["models"]]
                                 + [r["model"] for r in report.get("trend") or []])
    drawn = [
        charts.pareto_scatter(report["models"], colors),
        charts.grouped_bars(report["niches"], "composite", colors, "Composite by niche", "composite (0-100)"),
        charts.latency_cdf(report.get("latency_quantiles") or {}, colors),
        charts.composite_trend(report.get("trend") or [], colors),
        charts.value_bars("p95 end-to-end latency (ms)", report["models"], "p95_latency_ms", "{:,.0f} ms"),
        charts.value_bars("CLIP prompt alignment (0-100)", report["models"], "clip", "{:.2f}"),
    ]
    return [svg for svg in drawn if svg]


def render_html(report: dict[str, Any]) -> str:
    """One self-contained page (Jinja2 template, matplotlib SVG charts; no scripts or assets)."""
    niche_cols = COLUMNS[:1] + [("niche", "Niche", "{}")] + COLUMNS[2:]
    iv = report.get("intervals") or {}
    ci_note = (f"Values in brackets: {iv['level']:.0%} bootstrap confidence intervals (see the notes below)."
               if iv.get("enabled") else "")
    tables = {"pricing": _table(pricing_rows(report), PRICING_COLUMNS), "models": _table(report["models"], COLUMNS),
              "niches": _table(report["niches"], niche_cols),
              "cost": _table(report.get("cost_breakdown", []), COST_COLUMNS),
              "latency": _table(report.get("latency_breakdown", []), LATENCY_COLUMNS)}
    return _template().render(window_text=_window_text(report), scorer_version=report["scorer_version"],
                              ci_note=ci_note, tables=tables, charts=html_charts(report), ranks=_ranks(report),
                              guard=guard_page(report),
                              notes=quality_notes(report))
