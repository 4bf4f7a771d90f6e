"""Inline SVG charts of the HTML report: self-contained (no scripts, no external assets).

* ``pareto_scatter``: composite against cost per image per model, the Pareto frontier drawn
  as a line (``pareto_frontier``), bootstrap intervals as whiskers, a log cost axis when costs
  spread over more than a factor of 10.
* ``latency_cdf``: the empirical CDF of end-to-end latency per model from its quantile table
  (one polyline per model; log latency axis when latencies spread over more than 20×).
* ``grouped_bars``: composite by niche, one bar per model in each niche, interval whiskers.
* ``composite_trend``: the composite over time per model, from the stored benchmark snapshots.

Every chart is an ``<svg role="img" aria-label=...>`` with a ``<title>``; points and bars
carry ``<title>`` tooltips with their numbers.
"""

from __future__ import annotations

import html
import math
from typing import Any, Callable, Sequence

PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac"]  # Tableau 10


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


# -- axes ---------------------------------------------------------------------------------------

def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (1, 2, 2.5 or 5 × 10^k steps)."""
    if not hi > lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks, t = [], start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    if ticks[-1] < hi:
        ticks.append(round(t, 12))
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    """1, 2, 5 × 10^k values within [lo, hi] (decades only when there are many)."""
    out = []
    for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            v = m * 10.0 ** k
            if lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9):
                out.append(v)
    decades = [v for v in out if math.isclose(math.log10(v), round(math.log10(v)))]
    return decades if len(decades) >= 4 else out


class Axis:
    """A linear or log mapping of [lo, hi] onto pixels [p0, p1]."""

    def __init__(self, lo: float, hi: float, p0: float, p1: float, log: bool = False) -> None:
        self.log = log
        self.lo, self.hi = (math.log10(lo), math.log10(hi)) if log else (lo, hi)
        if self.hi == self.lo:
            self.lo, self.hi = self.lo - 0.5, self.hi + 0.5
        self.p0, self.p1 = p0, p1

    def __call__(self, v: float) -> float:
        x = math.log10(v) if self.log else v
        return self.p0 + (x - self.lo) / (self.hi - self.lo) * (self.p1 - self.p0)


def _spread_is_large(values: Sequence[float], ratio: float) -> bool:
    return bool(values) and min(values) > 0 and max(values) / min(values) > ratio


def _range(values: Sequence[float], log: bool, pad: float = 0.08) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if log:
        f = (hi / lo) ** pad if hi > lo else 1.5
        return lo / f, hi * f
    d = (hi - lo) * pad or (abs(hi) * 0.1 or 1.0)
    return lo - d, hi + d


def _esc(text: Any) -> str:
    return html.escape(str(text))


def _open(title: str, width: int, height: int) -> list[str]:
    return [f'<svg role="img" aria-label="{_esc(title)}" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
            f"<title>{_esc(title)}</title>",
            f'<text x="0" y="16" font-weight="bold">{_esc(title)}</text>']


def _x_axis(parts: list[str], axis: Axis, ticks: Sequence[float], y0: float, y1: float, label: str,
            fmt: Callable[[float], str]) -> None:
    for t in ticks:
        x = axis(t)
        parts.append(f'<line x1="{x:.1f}" y1="{y0:.1f}" x2="{x:.1f}" y2="{y1:.1f}" stroke="#e3e7ed"/>'
                     f'<text x="{x:.1f}" y="{y1 + 16:.1f}" text-anchor="middle" fill="#5b6675">{_esc(fmt(t))}</text>')
    mid = (axis.p0 + axis.p1) / 2
    parts.append(f'<text x="{mid:.1f}" y="{y1 + 36:.1f}" text-anchor="middle">{_esc(label)}</text>')


def _y_axis(parts: list[str], axis: Axis, ticks: Sequence[float], x0: float, x1: float, label: str,
            fmt: Callable[[float], str]) -> None:
    for t in ticks:
        y = axis(t)
        parts.append(f'<line x1="{x0:.1f}" y1="{y:.1f}" x2="{x1:.1f}" y2="{y:.1f}" stroke="#e3e7ed"/>'
                     f'<text x="{x0 - 6:.1f}" y="{y + 4:.1f}" text-anchor="end" fill="#5b6675">{_esc(fmt(t))}</text>')
    mid = (axis.p0 + axis.p1) / 2
    parts.append(f'<text transform="translate(14 {mid:.1f}) rotate(-90)" text-anchor="middle">{_esc(label)}</text>')


def _legend(parts: list[str], names: Sequence[str], colors: dict[str, str], x: float, y: float,
            line: bool = False) -> None:
    for i, name in enumerate(names):
        yy = y + i * 20
        mark = (f'<line x1="{x:.1f}" y1="{yy:.1f}" x2="{x + 18:.1f}" y2="{yy:.1f}" stroke="{colors[name]}" '
                f'stroke-width="3"/>' if line else
                f'<rect x="{x + 4:.1f}" y="{yy - 6:.1f}" width="12" height="12" fill="{colors[name]}"/>')
        parts.append(f'{mark}<text x="{x + 24:.1f}" y="{yy + 4:.1f}">{_esc(name)}</text>')


def _usd(v: float) -> str:
    return f"${v:.3g}" if v < 1 else f"${v:,.2f}"


def _ms(v: float) -> str:
    return f"{v / 1000:g} s" if v >= 1000 else f"{v:g} ms"


# -- charts -------------------------------------------------------------------------------------

def pareto_scatter(rows: Sequence[dict[str, Any]], colors: dict[str, str],
                   title: str = "Quality vs cost per image, with the Pareto frontier") -> str:
    """Composite (y) against cost per image (x) per model; frontier = ``pareto_frontier``."""
    pts = [r for r in rows if r.get("composite") is not None and r.get("cost_per_image_usd") is not None
           and math.isfinite(r["cost_per_image_usd"])]
    if not pts:
        return ""
    width, height = 760, 460
    left, right, top, bottom = 64, 200, 34, 76
    costs = [r["cost_per_image_usd"] for r in pts]
    for r in pts:
        costs += [v for v in (r.get("cost_per_image_usd_ci") or []) if v and v > 0]
    log = _spread_is_large(costs, 10)
    comps = [r["composite"] for r in pts] + [v for r in pts for v in (r.get("composite_ci") or [])]
    x = Axis(*_range(costs, log), left, width - right, log)
    ylo, yhi = _range(comps, False, 0.12)
    yt = nice_ticks(max(0.0, ylo), min(100.0, yhi))
    y = Axis(yt[0], yt[-1], height - bottom, top)
    xlo, xhi = (10 ** x.lo, 10 ** x.hi) if log else (x.lo, x.hi)
    xt = log_ticks(xlo, xhi) if log else [t for t in nice_ticks(xlo, xhi) if xlo <= t <= xhi]
    parts = _open(title, width, height)
    _x_axis(parts, x, xt, top, height - bottom,
            "cost per image (USD" + (", log scale)" if log else ")"), _usd)
    _y_axis(parts, y, yt, left, width - right, "composite (0-100)", lambda v: f"{v:g}")
    frontier = pareto_frontier([(r["model"], r["cost_per_image_usd"], r["composite"]) for r in pts])
    by_name = {r["model"]: r for r in pts}
    if len(frontier) > 1:
        line = " ".join(f"{x(by_name[m]['cost_per_image_usd']):.1f},{y(by_name[m]['composite']):.1f}"
                        for m in frontier)
        parts.append(f'<polyline points="{line}" fill="none" stroke="#1d2430" stroke-width="1.5" '
                     f'stroke-dasharray="6 4"><title>Pareto frontier: {_esc(", ".join(frontier))}</title></polyline>')
    labels: list[tuple[float, float, str, str]] = []
    for r in sorted(pts, key=lambda r: r["model"]):
        cx, cy, color = x(r["cost_per_image_usd"]), y(r["composite"]), colors.get(r["model"], PALETTE[0])
        ci_c, ci_q = r.get("cost_per_image_usd_ci"), r.get("composite_ci")
        if ci_q:
            parts.append(f'<line x1="{cx:.1f}" y1="{y(ci_q[0]):.1f}" x2="{cx:.1f}" y2="{y(ci_q[1]):.1f}" '
                         f'stroke="{color}" stroke-width="1.5"/>')
        if ci_c and (not log or ci_c[0] > 0) and ci_c[1] > ci_c[0]:
            parts.append(f'<line x1="{x(ci_c[0]):.1f}" y1="{cy:.1f}" x2="{x(ci_c[1]):.1f}" y2="{cy:.1f}" '
                         f'stroke="{color}" stroke-width="1.5"/>')
        on = r["model"] in frontier
        tip = (f"{r['model']}: composite {r['composite']:.1f}, cost {_usd(r['cost_per_image_usd'])}/image"
               + (" (Pareto frontier)" if on else ""))
        parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="6" fill="{color if on else "#fff"}" '
                     f'stroke="{color}" stroke-width="2.5"><title>{_esc(tip)}</title></circle>')
        labels.append((cx, cy, r["model"], color))
    parts += _point_labels(labels, width - right + 190)
    parts.append(f'<text x="{left}" y="{height - 6}" fill="#5b6675">● Pareto frontier: no other model is at least as good '
                 f'for no more cost · ○ dominated · whiskers: 95% CI</text>')
    parts.append("</svg>")
    return "".join(parts)


def _point_labels(labels: list[tuple[float, float, str, str]], max_x: float) -> list[str]:
    """Name labels right of their points, nudged down so labels at similar heights don't overlap."""
    out, placed = [], []  # placed: (x0, x1, y) of labels drawn
    for cx, cy, name, color in sorted(labels, key=lambda t: t[1]):
        w = 7.2 * len(name)
        lx, ly = cx + 10, cy + 4
        if lx + w > max_x:  # no room on the right: put it on the left
            lx = cx - 10 - w
        for _ in range(20):
            if all(abs(ly - py) >= 15 or lx + w < px0 or lx > px1 for px0, px1, py in placed):
                break
            ly += 15
        placed.append((lx, lx + w, ly))
        out.append(f'<text x="{lx:.1f}" y="{ly:.1f}" fill="{color}" font-weight="bold" stroke="#fff" '
                   f'stroke-width="3" paint-order="stroke">{_esc(name)}</text>')
    return out


def latency_cdf(quantiles: dict[str, Any], colors: dict[str, str],
                title: str = "End-to-end latency, empirical CDF per model") -> str:
    """One polyline per model through (latency quantile, level) of the report's quantile table."""
    levels: list[float] = quantiles.get("levels") or []
    series = {m: q for m, q in sorted((quantiles.get("models") or {}).items()) if q}
    if not series or not levels:
        return ""
    width, height = 760, 400
    left, right, top, bottom = 64, 200, 34, 58
    values = [v for q in series.values() for v in q]
    log = _spread_is_large(values, 20)
    x = Axis(*_range(values, log, 0.03), left, width - right, log)
    y = Axis(0.0, 1.0, height - bottom, top)
    xlo, xhi = (10 ** x.lo, 10 ** x.hi) if log else (x.lo, x.hi)
    xt = log_ticks(xlo, xhi) if log else [t for t in nice_ticks(xlo, xhi) if xlo <= t <= xhi]
    parts = _open(title, width, height)
    _x_axis(parts, x, xt, top, height - bottom,
            "latency, requested → delivered" + (" (log scale)" if log else ""), _ms)
    _y_axis(parts, y, [0, 0.25, 0.5, 0.75, 1.0], left, width - right, "fraction of jobs",
            lambda v: f"{v:.0%}")
    parts.append(f'<line x1="{left}" y1="{y(0.95):.1f}" x2="{width - right}" y2="{y(0.95):.1f}" stroke="#8a94a3" '
                 f'stroke-dasharray="3 3"/><text x="{left + 4}" y="{y(0.95) - 4:.1f}" fill="#5b6675">p95</text>')
    for model, q in series.items():
        pts = " ".join(f"{x(v):.1f},{y(level):.1f}" for v, level in zip(q, levels))
        p95 = q[min(range(len(levels)), key=lambda i: abs(levels[i] - 0.95))]
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{colors.get(model, PALETTE[0])}" '
                     f'stroke-width="2.2"><title>{_esc(model)}: p95 {p95:,.0f} ms</title></polyline>')
    _legend(parts, list(series), colors, width - right + 16, top + 10, line=True)
    parts.append("</svg>")
    return "".join(parts)


def grouped_bars(rows: Sequence[dict[str, Any]], key: str, colors: dict[str, str], title: str,
                 y_label: str, group_key: str = "niche") -> str:
    """Bars of ``key`` per group (niches along x), one bar per model, interval whiskers."""
    present = [r for r in rows if r.get(key) is not None]
    if not present:
        return ""
    groups = sorted({r[group_key] for r in present})
    models = sorted({r["model"] for r in present})
    value = {(r[group_key], r["model"]): r for r in present}
    width, height = 760, 380
    left, right, top, bottom = 64, 200, 34, 50
    tops = [r[key] for r in present] + [v for r in present for v in (r.get(f"{key}_ci") or [])]
    yt = nice_ticks(0.0, max(tops) * 1.05 or 1.0)
    y = Axis(0.0, yt[-1], height - bottom, top)
    parts = _open(title, width, height)
    _y_axis(parts, y, yt, left, width - right, y_label, lambda v: f"{v:g}")
    slot = (width - right - left) / len(groups)
    bar = min(28.0, slot * 0.8 / len(models))
    for g, group in enumerate(groups):
        x0 = left + g * slot + (slot - bar * len(models)) / 2
        for m, model in enumerate(models):
            r = value.get((group, model))
            if r is None:
                continue
            bx, v = x0 + m * bar, r[key]
            parts.append(f'<rect x="{bx:.1f}" y="{y(v):.1f}" width="{bar - 2:.1f}" height="{y(0) - y(v):.1f}" '
                         f'fill="{colors.get(model, PALETTE[0])}"><title>{_esc(model)}, {_esc(group)}: '
                         f'{v:.1f}</title></rect>')
            ci = r.get(f"{key}_ci")
            if ci:
                cx = bx + (bar - 2) / 2
                parts.append(f'<line x1="{cx:.1f}" y1="{y(ci[0]):.1f}" x2="{cx:.1f}" y2="{y(ci[1]):.1f}" '
                             f'stroke="#1d2430" stroke-width="1.2"/>')
        parts.append(f'<text x="{left + (g + 0.5) * slot:.1f}" y="{height - bottom + 18}" '
                     f'text-anchor="middle">{_esc(group)}</text>')
    _legend(parts, models, colors, width - right + 16, top + 10)
    parts.append(f'<text x="{width - right + 16}" y="{top + 10 + 20 * len(models) + 10}" fill="#5b6675">'
                 f'whiskers: 95% CI</text>')
    parts.append("</svg>")
    return "".join(parts)


def composite_trend(trend: Sequence[dict[str, Any]], colors: dict[str, str],
                    title: str = "Composite over time (benchmark snapshots)") -> str:
    """One polyline per model through (snapshot window end, composite); '' without 2 windows."""
    from datetime import datetime, timezone

    points: dict[str, list[tuple[float, float]]] = {}
    for r in trend:
        if r.get("composite") is not None:
            end = datetime.fromisoformat(str(r["window_end"]))
            t = (end if end.tzinfo else end.replace(tzinfo=timezone.utc)).timestamp()
            points.setdefault(r["model"], []).append((t, float(r["composite"])))
    times = sorted({t for pts in points.values() for t, _ in pts})
    if len(times) < 2:
        return ""
    width, height = 760, 360
    left, right, top, bottom = 64, 200, 34, 58
    x = Axis(times[0], times[-1], left, width - right)
    values = [v for pts in points.values() for _, v in pts]
    yt = nice_ticks(min(0.0, min(values)), max(values) * 1.05 or 1.0)
    y = Axis(yt[0], yt[-1], height - bottom, top)
    parts = _open(title, width, height)
    xt = [times[round(i * (len(times) - 1) / 4)] for i in range(5)] if len(times) > 5 else times
    _x_axis(parts, x, sorted(set(xt)), top, height - bottom, "snapshot window end (UTC)",
            lambda t: datetime.fromtimestamp(t, timezone.utc).strftime("%m-%d %H:%M"))
    _y_axis(parts, y, yt, left, width - right, "composite (0-100)", lambda v: f"{v:g}")
    for model, pts in sorted(points.items()):
        pts.sort()
        color = colors.get(model, PALETTE[0])
        line = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts)
        parts.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="2.2"/>')
        parts += [f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="3" fill="{color}"><title>{_esc(model)}: '
                  f'{v:.1f}</title></circle>' for t, v in pts]
    _legend(parts, sorted(points), colors, width - right + 16, top + 10, line=True)
    parts.append("</svg>")
    return "".join(parts)
