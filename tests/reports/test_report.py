"""Report renderers (reports/report.py): small costs keep their significant digits, the pricing
prints as a table (not a Python dict), charts take the page width."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from reports.report import USD, render_html, render_markdown
from report_fixtures import synthetic_report as _report


@pytest.mark.parametrize("value", [0.0000231, 0.000004567, 0.00123, 0.002005, 0.042, 1.5])
def test_usd_shows_at_least_three_significant_digits_and_six_decimals(value) -> None:
    text = USD.format(value)
    digits = Decimal(text).as_tuple()
    assert -digits.exponent >= 6
    assert len(str(int("".join(map(str, digits.digits))))) >= 3  # significant digits, leading zeros dropped
    assert float(text) == pytest.approx(value, rel=5e-3)
    assert USD.format(0.0) == "0.000000"


def test_pricing_is_a_table_in_html_and_markdown() -> None:
    report = _report()
    report["pricing"]["gpu_usd_per_hour"] = {"L4": 0.8, "A100-80GB": 1.89}
    page, md = render_html(report), render_markdown(report)
    assert "{'" not in page and "{'" not in md  # no Python dict repr
    assert re.search(r"<td>GPU A100-80GB \(\$/hour\)</td><td>1\.89</td>", page)
    assert "| GPU L4 ($/hour) | 0.8 |" in md and "| platform fee ($/image) | 0.002 |" in md


def test_charts_use_the_page_width() -> None:
    page = render_html(_report())
    css = re.search(r"svg \{\{?([^}]*)\}", page).group(1)
    assert "width: 100%" in css and "height: auto" in css
    assert all('viewBox="0 0 ' in s for s in re.findall(r"<svg [^>]*>", page))
