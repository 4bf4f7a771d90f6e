"""Why the report's charts are matplotlib SVG and not Vega-Lite through altair: the same four
line charts (8 models x 48 points) in both, page bytes and render time, with their ratios.

    python bench/chart_libs.py            # altair and vl-convert-python must be importable

altair is not a dependency of the project: install it (``pip install altair vl-convert-python``,
a separate virtual environment will do) to run this. Offline, a Vega-Lite page must inline the
vega, vega-lite and vega-embed scripts (``to_html(inline=True)``, through vl-convert); the
matplotlib charts are static SVG markup.
"""

from __future__ import annotations

import io
import time


def rows() -> list[dict]:
    return [{"model": f"m{m}", "t": f"2026-01-{1 + h // 24:02d}T{h % 24:02d}:00:00", "composite": 50 + m + h * 0.1}
            for m in range(8) for h in range(48)]


def with_matplotlib(n: int) -> tuple[int, float]:
    import matplotlib
    from matplotlib.figure import Figure

    data = rows()
    t0 = time.perf_counter()
    total = 0
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        for _ in range(n):
            fig = Figure(figsize=(10, 4.2))
            ax = fig.add_subplot()
            for m in range(8):
                ax.plot(range(48), [r["composite"] for r in data if r["model"] == f"m{m}"], marker="o", ms=3, label=f"m{m}")
            ax.legend()
            buf = io.StringIO()
            fig.savefig(buf, format="svg")
            total += len(buf.getvalue().encode())
    return total, time.perf_counter() - t0


def with_altair(n: int) -> tuple[int, float]:
    import altair as alt

    data = rows()
    t0 = time.perf_counter()
    specs = []
    for _ in range(n):
        chart = alt.Chart(alt.Data(values=data)).mark_line(point=True).encode(
            x="t:T", y="composite:Q", color="model:N").properties(width="container")
        specs.append(chart)
    page = alt.vconcat(*specs).to_html(inline=True)  # one page, the scripts inlined once
    return len(page.encode()), time.perf_counter() - t0


def main() -> None:
    import matplotlib  # noqa: F401  (imports outside the timings)
    import altair  # noqa: F401

    with_matplotlib(1), with_altair(1)  # warm-up
    mb, ms = with_matplotlib(4)
    ab, at = with_altair(4)
    print(f"{'':10} {'bytes':>10} {'seconds':>8}")
    print(f"{'matplotlib':10} {mb:>10,} {ms:>8.3f}   (4 inline SVG charts)")
    print(f"{'altair':10} {ab:>10,} {at:>8.3f}   (one page, 4 charts, scripts inlined)")
    print(f"ratio altair / matplotlib: bytes {ab / mb:.1f}x, time {at / ms:.1f}x")


if __name__ == "__main__":
    main()
