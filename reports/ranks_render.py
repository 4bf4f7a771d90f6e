"""The significance section of the report (``reports.ranking``) in each format: a ranks table
(shared ranks "1–2"), a table of pairwise probabilities and the per-scope leader sentences;
for CSV, extra columns on each row; for HTML, the rows the page template
(reports/templates/report.html.j2) lays out."""

from __future__ import annotations

from typing import Any

from sentinel.significance import DIMENSIONS

SCOPE_ALL = "*"


def _scope_label(scope: str) -> str:
    return "all traffic" if scope == SCOPE_ALL else scope


def _section(report: dict[str, Any]) -> dict[str, Any]:
    return report.get("significance") or {}


def note(report: dict[str, Any]) -> str:
    """One sentence: what a shared rank and P mean, and the bootstrap behind them."""
    sig = _section(report)
    if not sig.get("enabled"):
        return "No ranks or pairwise probabilities (bootstrap_resamples = 0)."
    skipped = "; ".join(sig.get("not_tested", {}).values())
    return (f"Ranks: '1–2' = shared, the models are not separated at {sig['level']:.0%} (family-wise over every "
            f"pair and dimension of the scope, Holm); P = bootstrap probability that the first model is better "
            f"({sig['resamples']:,} resamples, seed {sig['seed']}; * = separated)."
            + (f" {skipped}." if skipped else ""))


def human_pairs_notes(report: dict[str, Any]) -> list[str]:
    """Per niche: its ratings and n per model pair behind the per-niche Bradley–Terry fit."""
    niches = ((report.get("quality") or {}).get("human") or {}).get("niches") or {}
    return [f"Human ratings in {niche}: {h['ratings']:,}; per pair " +
            ", ".join(f"{p['model_a']}–{p['model_b']} {p['n']}" for p in h.get("pairs", []))
            for niche, h in niches.items()]


def rank_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per scope and model: the rank text of each dimension."""
    rows = [{"scope": _scope_label(SCOPE_ALL), **r} for r in report["models"]]
    rows += [{**r, "scope": r["niche"]} for r in sorted(report["niches"], key=lambda r: r["niche"])]
    return [{"scope": r["scope"], "model": r["model"], **{f"rank_{d.key}": r.get(f"rank_{d.key}", "–")
                                                         for d in DIMENSIONS}} for r in rows]


RANK_COLUMNS = [("scope", "Scope", "{}"), ("model", "Model", "{}")] + [
    (f"rank_{d.key}", f"{d.label} rank", "{}") for d in DIMENSIONS]
PAIR_COLUMNS = [("scope", "Scope", "{}"), ("pair", "Pair (a vs b)", "{}")] + [
    (d.key, f"P(a better) {d.label}", "{}") for d in DIMENSIONS]


def pair_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per scope and model pair: P(a better than b) per dimension, '*' when separated."""
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for scope, result in (_section(report).get("scopes") or {}).items():
        for key, dim in result["dimensions"].items():
            for p in dim["pairs"]:
                row = out.setdefault((scope, p["a"], p["b"]), {"scope": _scope_label(scope),
                                                              "pair": f"{p['a']} vs {p['b']}",
                                                              **{d.key: "–" for d in DIMENSIONS}})
                row[key] = f"{p['p_a_better']:.3f}" + ("*" if p["separated"] else "")
    return list(out.values())


def statements(report: dict[str, Any]) -> list[str]:
    return list(_section(report).get("statements") or [])


def render_terminal(report: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    if not _section(report).get("enabled"):
        return
    for title, rows, cols in (("Ranks ('1–2' = shared: not separated at 95%)", rank_rows(report), RANK_COLUMNS),
                              ("P(a better than b), * = separated", pair_rows(report), PAIR_COLUMNS)):
        table = Table(title=title, title_justify="left")
        for key, header, _ in cols:
            table.add_column(header.replace("P(a better) ", "").replace(" rank", ""),
                             justify="left" if key in ("scope", "model", "pair") else "right")
        for row in rows:
            table.add_row(*[str(row.get(key, "–")) for key, _, _ in cols])
        console.print(table)
    for line in statements(report):
        console.print(line, highlight=False)


def _md_table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> list[str]:
    lines = ["| " + " | ".join(h for _, h, _ in columns) + " |",
             "|" + "|".join("---" if i < 2 else "---:" for i in range(len(columns))) + "|"]
    return lines + ["| " + " | ".join(str(r.get(k, "–")) for k, _, _ in columns) + " |" for r in rows]


def markdown(report: dict[str, Any]) -> list[str]:
    """The '## Ranks and significance' section as Markdown lines (empty when disabled)."""
    if not _section(report).get("enabled"):
        return []
    return ["## Ranks and significance", "", note(report), "", *[f"- {s}" for s in statements(report)], "",
            *_md_table(rank_rows(report), RANK_COLUMNS), "", *_md_table(pair_rows(report), PAIR_COLUMNS), ""]


def csv_columns(report: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """Extra CSV columns of one row, the same keys on every row: the dimensions it leads
    outright on, and P(this model better than M) per dimension for every model M (empty where
    not compared)."""
    sig = _section(report)
    models = [r["model"] for r in report["models"]]
    out: dict[str, Any] = {"leads_outright_on": ""}
    for d in DIMENSIONS:
        for other in models:
            out[f"p_better_{d.key}_vs_{other}"] = None
    if not sig.get("enabled"):
        return out
    result = (sig.get("scopes") or {}).get(row.get("niche", SCOPE_ALL)) or {}
    out["leads_outright_on"] = ";".join((result.get("leads") or {}).get(row["model"], []))
    for key, dim in (result.get("dimensions") or {}).items():
        for p in dim["pairs"]:
            if row["model"] in (p["a"], p["b"]):
                mine = p["a"] == row["model"]
                out[f"p_better_{key}_vs_{p['b'] if mine else p['a']}"] = \
                    p["p_a_better"] if mine else 1.0 - p["p_a_better"]
    return out
