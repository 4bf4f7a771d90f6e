"""The guard-mode section of the report: per model and per model x niche, first-attempt pass
rate, attempts per delivered image, failed checks, cost per delivered image (discarded attempts
included, priced by the one SQL cost function) and the p95 latency guarding added.

Shown only when the window holds guarded events (``report["guard"]`` is None otherwise). The
numbers come from ``sql/reports/guard*.sql``; this module only arranges and renders them. The
HTML part is one function (``guard_html``) so the page's template can change around it.
"""

from __future__ import annotations

import math
from typing import Any

from reports import rollups
from warehouse.client import Warehouse


class _Usd:
    def format(self, value: float) -> str:  # as reports.report.Usd: at least three significant digits
        if value == 0 or not math.isfinite(value):
            return f"{value:.6f}"
        return f"{value:.{max(6, 2 - math.floor(math.log10(abs(value))))}f}"


GUARD_COLUMNS = [  # key, header, format
    ("model", "Model", "{}"),
    ("requests", "Requests", "{:,}"),
    ("delivered", "Delivered", "{:,}"),
    ("first_attempt_pass_rate", "1st-attempt pass", "{:.1%}"),
    ("attempts_per_delivered", "Attempts / delivered", "{:.2f}"),
    ("failed_requests", "Failed requests", "{:,}"),
    ("unguarded", "Unguarded", "{:,}"),
    ("cost_per_delivered_usd", "$ / delivered", _Usd()),
    ("p95_added_latency_ms", "p95 added ms", "{:,.0f}"),
    ("failures", "Failures by check", "{}"),
]
CSV_KEYS = [k for k, _, _ in GUARD_COLUMNS if k != "model"]
TERMINAL_GUARD_COLUMNS = [  # narrow enough for 80 columns; failures by check print below the table
    ("model", "Model", "{}"),
    ("requests", "Req.", "{:,}"),
    ("first_attempt_pass_rate", "1st pass", "{:.0%}"),
    ("attempts_per_delivered", "Att./img", "{:.2f}"),
    ("failed_requests", "Failed", "{:,}"),
    ("unguarded", "Ungrd.", "{:,}"),
    ("cost_per_delivered_usd", "$/delivered", _Usd()),
    ("p95_added_latency_ms", "p95 +ms", "{:,.0f}"),
]


def _clean(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def guard_section(reader: Warehouse, params: dict[str, Any]) -> dict[str, Any] | None:
    """The section as plain data, or None when no guarded request is in the window."""
    rows = [{k: _clean(v) for k, v in r.items()} for r in rollups.query(reader, "guard", params).to_pylist()]
    if not rows:
        return None
    failures = rollups.query(reader, "guard_failures", params).to_pylist()
    by_group: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for f in failures:
        by_group.setdefault((f["model"], f["niche"]), []).append(
            {"check": f["check_name"], "failed": f["failed"], "share": f["failed_share"]})
    for r in rows:
        checks = by_group.get((r["model"], r["niche"]), [])
        r["failed_checks"] = checks
        r["failures"] = ", ".join(f"{c['check']} {c['failed']} ({c['share']:.0%})" for c in checks) or "none"
    rubrics = rollups.query(reader, "guard_rubrics", params).to_pylist()
    return {"rubrics": rubrics,
            "models": [{k: v for k, v in r.items() if k != "niche"} for r in rows if r["niche"] == "*"],
            "niches": [r for r in rows if r["niche"] != "*"]}


def add_guard_columns(report: dict[str, Any]) -> None:
    """Copy the guard numbers onto the benchmark's model and model x niche rows as ``guard_*``
    keys (every row gets every key, None where a row has no guarded traffic), for CSV."""
    section = report.get("guard")
    if not section:
        return
    index = {(r["model"], "*"): r for r in section["models"]} | {(r["model"], r["niche"]): r for r in section["niches"]}
    for niche_of, rows in ((lambda r: "*", report["models"]), (lambda r: r["niche"], report["niches"])):
        for row in rows:
            found = index.get((row["model"], niche_of(row)), {})
            for key in CSV_KEYS:
                row[f"guard_{key}"] = found.get(key)


def rubric_text(section: dict[str, Any]) -> str:
    used = "; ".join(f"{r['rubric_version'] or '?'} (scorer {r['scorer_version'] or '?'}, {r['attempts']:,} verdicts)"
                     for r in section["rubrics"]) or "none (every guarded attempt lacked a verdict)"
    return (f"Guard rubric used: {used}. Cost per delivered image = cost of every attempt, discarded ones included, "
            "/ delivered images; p95 added = discarded attempts + verdict calls; failed requests delivered nothing. "
            "The benchmark tables count delivered images only; their cost per image includes discarded attempts.")


def _fmt(fmt: Any, value: Any) -> str:
    return "–" if value is None else fmt.format(value)


def _niche_columns() -> list[tuple[str, str, Any]]:
    return GUARD_COLUMNS[:1] + [("niche", "Niche", "{}")] + GUARD_COLUMNS[1:]


def guard_terminal(report: dict[str, Any], console: Any) -> None:
    section = report.get("guard")
    if not section:
        return
    from rich.table import Table

    niche_cols = TERMINAL_GUARD_COLUMNS[:1] + [("niche", "Niche", "{}")] + TERMINAL_GUARD_COLUMNS[1:]
    for title, rows, cols in (("Guard mode — per model", section["models"], TERMINAL_GUARD_COLUMNS),
                              ("Guard mode — per model x niche", section["niches"], niche_cols)):
        table = Table(title=title, title_justify="left")
        for key, header, _ in cols:
            table.add_column(header, justify="left" if key in ("model", "niche") else "right", no_wrap=True)
        for row in rows:
            table.add_row(*[_fmt(fmt, row.get(key)) for key, _, fmt in cols])
        console.print(table)
    for row in section["models"]:
        console.print(f"failures by check, {row['model']}: {row['failures']}", highlight=False)
    console.print(rubric_text(section), highlight=False)


def guard_markdown(report: dict[str, Any]) -> list[str]:
    section = report.get("guard")
    if not section:
        return []
    out = ["## Guard mode", "", rubric_text(section), ""]
    for rows, cols in ((section["models"], GUARD_COLUMNS), (section["niches"], _niche_columns())):
        out += ["| " + " | ".join(h for _, h, _ in cols) + " |",
                "|" + "|".join("---" if k in ("model", "niche", "failures") else "---:" for k, _, _ in cols) + "|"]
        out += ["| " + " | ".join(_fmt(fmt, r.get(k)) for k, _, fmt in cols) + " |" for r in rows]
        out.append("")
    return out


def guard_page(report: dict[str, Any]) -> dict[str, Any] | None:
    """The guard section for the page template (reports/templates/report.html.j2): the rubric
    note and the per-model and per-model x niche tables (None without guarded traffic)."""
    section = report.get("guard")
    if not section:
        return None

    def table(rows: list[dict[str, Any]], cols: list[tuple[str, str, Any]]) -> dict[str, Any]:
        return {"headers": [h for _, h, _ in cols], "rows": [[(_fmt(fmt, r.get(k)), "") for k, _, fmt in cols] for r in rows]}

    return {"note": rubric_text(section),
            "tables": [table(section["models"], GUARD_COLUMNS), table(section["niches"], _niche_columns())]}
