"""Charts of the HTML report, drawn by matplotlib's SVG backend and inlined in the page (no
scripts, no external assets; text stays text, ``svg.fonttype = none``). The page's CSS scales
every chart to its width (each keeps its ``viewBox``).

* ``pareto_scatter``: composite against cost per image per model, the Pareto frontier
  (``pareto_frontier``) as a dashed line, bootstrap intervals as error bars, a log cost axis
  when costs spread over more than a factor of 10; frontier points filled, dominated hollow.
* ``latency_cdf``: the empirical CDF of end-to-end latency per model from its quantile table
  (log latency axis when latencies spread over more than 20×), p95 marked.
* ``grouped_bars``: a value by niche, one bar per model in each niche, interval error bars.
* ``composite_trend``: the composite over time per model, from the stored benchmark snapshots.
* ``value_bars``: one horizontal bar per model with its value printed.

Every chart is an ``<svg role="img" aria-label=...>`` with a ``<title>``. Artists carry ids
(``gid``) such as ``frontier``, ``point-<k>``, ``cdf-<k>``, ``bars-<k>-<j>``, ``trend-<k>`` (k:
the model's index in sorted order, j: the niche's), so tests and styles can find them. Ids are unique per chart
(``svg.hashsalt`` = the chart's name) and the output is deterministic.
"""

from __future__ import annotations

import html
import io
import math
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator, Sequence

PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac"]  # Tableau 10
INK, MUTED = "#1d2430", "#5b6675"


def model_colors(models: Sequence[str]) -> dict[str, str]:
    """One color per model, by sorted name, so a model has the same color in every chart."""
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(sorted(set(models)))}


def pareto_frontier(points: Sequence[tuple[str, float, float]]) -> list[str]:
    """Names of the non-dominated points of (name, cost, quality), cheapest first.

    A point is dominated when another has quality >= and cost <= with at least one strict
    (higher quality or lower cost). Equal points do not dominate each other; NaN points are
    left out."""
    pts = [(n, c, q) for n, c, q in points if not (math.isnan(c) or math.isnan(q))]
    # by cost ascending, then quality descending: a point is on the frontier iff its quality
    # beats every cheaper-or-equal point before it (equal points: equal to the best so far)
    ordered = sorted(pts, key=lambda p: (p[1], -p[2]))
    out: list[str] = []
    best: tuple[float, float] | None = None  # (cost, quality) of the best point so far
    for name, cost, quality in ordered:
        if best is None or quality > best[1] or (quality == best[1] and cost == best[0]):
            out.append(name)
            best = (cost, quality)
    return out


def _spread_is_large(values: Sequence[float], ratio: float) -> bool:
    return bool(values) and min(values) > 0 and max(values) / min(values) > ratio


class Chart:
    """One figure being drawn; ``svg`` holds the inline SVG once the ``chart`` block ends."""

    def __init__(self, fig: Any) -> None:
        self.fig = fig
        self.ax = fig.add_subplot()
        self.svg = ""


@contextmanager
def chart(title: str, name: str, height_in: float = 4.2, left: float = 0.08, right: float = 0.8,
          bottom_in: float = 0.65) -> Iterator[Chart]:
    """A matplotlib figure (no pyplot: no global state) styled like the page; on exit its SVG,
    with role/aria-label and a <title>, is in ``.svg``. Fixed margins (fractions of the width;
    the bottom in inches), room for a legend on the right: a layout engine would draw every
    figure twice (measured: ~40% of the render time)."""
    import matplotlib
    from matplotlib.figure import Figure

    style = {"svg.fonttype": "none", "svg.hashsalt": name, "font.family": "sans-serif", "font.size": 10,
             "axes.edgecolor": "#b9c0ca", "axes.labelcolor": INK, "xtick.color": MUTED, "ytick.color": MUTED,
             "axes.grid": True, "grid.color": "#e3e7ed", "axes.spines.top": False, "axes.spines.right": False,
             "axes.titlesize": 12, "axes.titleweight": "bold", "axes.titlelocation": "left"}
    with matplotlib.rc_context(style):
        c = Chart(Figure(figsize=(10, height_in)))
        c.fig.subplots_adjust(left=left, right=right, bottom=bottom_in / height_in, top=1 - 0.45 / height_in)
        c.ax.set_title(title, color=INK)
        c.ax.set_axisbelow(True)
        yield c
        buf = io.StringIO()
        c.fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = buf.getvalue()
    svg = text[text.index("<svg"):].strip()
    label = html.escape(title)
    svg = svg.replace("<svg ", f'<svg role="img" aria-label="{label}" ', 1)
    end = svg.index(">") + 1
    c.svg = f"{svg[:end]}\n <title>{label}</title>{svg[end:]}"


def _usd(v: float, _pos: Any = None) -> str:
    return f"${v:.3g}" if v < 1 else f"${v:,.2f}"


def _ms(v: float, _pos: Any = None) -> str:
    return f"{v / 1000:g} s" if v >= 1000 else f"{v:g} ms"


def _ids(colors: dict[str, str], names: Any) -> dict[str, int]:
    """Each model's index in sorted order (the k of the artists' ids), over every model named."""
    return {m: k for k, m in enumerate(sorted(set(colors) | set(names)))}


def _legend(ax: Any) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


# -- charts -------------------------------------------------------------------------------------

def pareto_scatter(rows: Sequence[dict[str, Any]], colors: dict[str, str],
                   title: str = "Quality vs cost per image, with the Pareto frontier") -> str:
    """Composite (y) against cost per image (x) per model; frontier = ``pareto_frontier``."""
    from matplotlib.ticker import FuncFormatter

    pts = sorted((r for r in rows if r.get("composite") is not None and r.get("cost_per_image_usd") is not None
                  and math.isfinite(r["cost_per_image_usd"])), key=lambda r: r["model"])
    if not pts:
        return ""
    costs = [r["cost_per_image_usd"] for r in pts]
    log = _spread_is_large(costs, 10)
    frontier = pareto_frontier([(r["model"], r["cost_per_image_usd"], r["composite"]) for r in pts])
    index = _ids(colors, [r["model"] for r in pts])
    with chart(title, "pareto", 4.6, right=0.97, bottom_in=0.95) as c:
        ax = c.ax
        if len(frontier) > 1:
            by = {r["model"]: r for r in pts}
            ax.plot([by[m]["cost_per_image_usd"] for m in frontier], [by[m]["composite"] for m in frontier],
                    ls="--", color=INK, lw=1.4, gid="frontier", label="Pareto frontier")
        for r in pts:
            color, on = colors.get(r["model"], PALETTE[0]), r["model"] in frontier
            x, y = r["cost_per_image_usd"], r["composite"]
            # intervals drawn from lo to hi as they are (a point estimate may lie outside its
            # interval: the interval rests on a capped sample of jobs)
            ci_q, ci_c = r.get("composite_ci"), r.get("cost_per_image_usd_ci")
            if ci_q:
                ax.vlines(x, ci_q[0], ci_q[1], color=color, lw=1.3)
            if ci_c and (not log or ci_c[0] > 0):
                ax.hlines(y, ci_c[0], ci_c[1], color=color, lw=1.3)
            ax.scatter([x], [y], s=70, facecolor=color if on else "white", edgecolor=color, linewidth=2.2,
                       zorder=3, gid=f"point-{index.get(r['model'], 0)}")
            ax.annotate(r["model"], (x, y), xytext=(7, 5), textcoords="offset points", color=color, weight="bold")
        if log:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _p: _usd(v) if f"{v:.0e}"[0] in "25" else ""))
        ax.xaxis.set_major_formatter(FuncFormatter(_usd))
        ax.set_xlabel("cost per image (USD" + (", log scale)" if log else ")"))
        ax.set_ylabel("composite (0-100)")
        ax.margins(x=0.12, y=0.15)
        c.fig.text(0.01, 0.02, "● Pareto frontier: no other model is at least as good for no more cost · ○ dominated"
                   " · bars: 95% CI", color=MUTED, fontsize=9)
    return c.svg


def latency_cdf(quantiles: dict[str, Any], colors: dict[str, str],
                title: str = "End-to-end latency, empirical CDF per model") -> str:
    """One line per model through (latency quantile, level) of the report's quantile table."""
    from matplotlib.ticker import FuncFormatter, PercentFormatter

    levels: list[float] = quantiles.get("levels") or []
    series = {m: q for m, q in sorted((quantiles.get("models") or {}).items()) if q}
    if not series or not levels:
        return ""
    log = _spread_is_large([v for q in series.values() for v in q], 20)
    index = _ids(colors, series)
    with chart(title, "cdf") as c:
        ax = c.ax
        for model, q in series.items():
            ax.plot(q, levels, color=colors.get(model, PALETTE[0]), lw=2, label=model, gid=f"cdf-{index.get(model, 0)}")
        ax.axhline(0.95, color="#8a94a3", ls=":", lw=1)
        ax.annotate("p95", (0, 0.95), xycoords=("axes fraction", "data"), xytext=(4, 3), textcoords="offset points",
                    color=MUTED)
        if log:
            ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(_ms))
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("latency, requested → delivered" + (" (log scale)" if log else ""))
        ax.set_ylabel("fraction of jobs")
        _legend(ax)
    return c.svg


def grouped_bars(rows: Sequence[dict[str, Any]], key: str, colors: dict[str, str], title: str,
                 y_label: str, group_key: str = "niche") -> str:
    """Bars of ``key`` per group (niches along x), one bar per model, interval error bars."""
    present = [r for r in rows if r.get(key) is not None]
    if not present:
        return ""
    groups = sorted({r[group_key] for r in present})
    models = sorted({r["model"] for r in present})
    value = {(r[group_key], r["model"]): r for r in present}
    width = 0.8 / len(models)
    index = _ids(colors, models)
    with chart(title, f"bars-{key}") as c:
        ax = c.ax
        for m, model in enumerate(models):
            xs, ys, cis = [], [], []
            for g, group in enumerate(groups):
                r = value.get((group, model))
                if r is None:
                    continue
                xs.append(g - 0.4 + (m + 0.5) * width)
                ys.append(r[key])
                cis.append(r.get(f"{key}_ci"))
            bars = ax.bar(xs, ys, width * 0.92, color=colors.get(model, PALETTE[0]), label=model)
            ax.vlines([x for x, ci in zip(xs, cis) if ci], [ci[0] for ci in cis if ci], [ci[1] for ci in cis if ci],
                      color=INK, lw=1.1)
            for j, patch in enumerate(bars.patches):
                patch.set_gid(f"bars-{index.get(model, 0)}-{j}")
        ax.set_xticks(range(len(groups)), groups)
        ax.grid(axis="x", visible=False)
        ax.set_ylabel(y_label)
        _legend(ax)
    return c.svg


def value_bars(title: str, rows: Sequence[dict[str, Any]], key: str, fmt: str) -> str:
    """One horizontal bar per model (report order) with its value printed after it."""
    values = [(r["model"], r[key]) for r in rows if r.get(key) is not None]
    if not values:
        return ""
    longest = max(len(m) for m, _ in values)
    with chart(title, f"value-{key}", 1.1 + 0.38 * len(values), left=min(0.4, 0.03 + 0.0085 * longest), right=0.95,
               bottom_in=0.45) as c:
        ax = c.ax
        bars = ax.barh([m for m, _ in values], [v for _, v in values], color=PALETTE[0], height=0.65)
        for j, patch in enumerate(bars.patches):
            patch.set_gid(f"value-{key}-{j}")
        ax.bar_label(bars, labels=[fmt.format(v) for _, v in values], padding=4)
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        ax.margins(x=0.18)
    return c.svg


def composite_trend(trend: Sequence[dict[str, Any]], colors: dict[str, str],
                    title: str = "Composite over time (benchmark snapshots)") -> str:
    """One line per model through (snapshot window end, composite); '' without 2 windows."""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    points: dict[str, list[tuple[datetime, float]]] = {}
    for r in trend:
        if r.get("composite") is not None:
            end = datetime.fromisoformat(str(r["window_end"]))
            points.setdefault(r["model"], []).append((end if end.tzinfo else end.replace(tzinfo=timezone.utc),
                                                      float(r["composite"])))
    if len({t for pts in points.values() for t, _ in pts}) < 2:
        return ""
    index = _ids(colors, points)
    with chart(title, "trend") as c:
        ax = c.ax
        for model, pts in sorted(points.items()):
            pts.sort()
            ax.plot([t for t, _ in pts], [v for _, v in pts], marker="o", ms=3.5, lw=2, label=model,
                    color=colors.get(model, PALETTE[0]), gid=f"trend-{index.get(model, 0)}")
        locator = AutoDateLocator(tz=timezone.utc)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=timezone.utc))
        ax.set_xlabel("snapshot window end (UTC)")
        ax.set_ylabel("composite (0-100)")
        _legend(ax)
    return c.svg
