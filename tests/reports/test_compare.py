"""The report comparison walk of `sentinel bundle verify`: every number, any nesting, named paths."""

from __future__ import annotations

import copy
import math

from reports.compare import MISSING, Tolerance, compare
from report_fixtures import synthetic_report


def test_identical_reports_agree_and_every_number_is_counted() -> None:
    report = synthetic_report()
    result = compare(report, copy.deepcopy(report))
    assert result.agree and result.differences == []

    def count(v) -> int:  # independent count of the numbers in the report
        if isinstance(v, dict):
            return sum(count(x) for x in v.values())
        if isinstance(v, list):
            return sum(count(x) for x in v)
        return int(isinstance(v, (int, float)) and not isinstance(v, bool))

    assert result.numbers == count(report) > 500


def test_changed_numbers_are_named_by_model_niche_and_key() -> None:
    report = synthetic_report()
    other = copy.deepcopy(report)
    other["models"][1]["composite"] += 0.01
    other["niches"][3]["cost_per_image_usd_ci"][1] *= 1.001
    other["pricing"]["gpu_usd_per_hour"]["L4"] = 0.81
    other["latency_quantiles"]["models"]["sd"][100] += 1
    paths = {d.path: (d.bundled, d.recomputed) for d in compare(report, other).differences}
    assert paths == {
        "models[flux<&>].composite": (18.44, 18.44 + 0.01),
        "niches[flux<&>/product].cost_per_image_usd_ci[1]": (report["niches"][3]["cost_per_image_usd_ci"][1],
                                                              other["niches"][3]["cost_per_image_usd_ci"][1]),
        "pricing.gpu_usd_per_hour.L4": (0.8, 0.81),
        "latency_quantiles.models.sd[100]": (report["latency_quantiles"]["models"]["sd"][100],
                                             other["latency_quantiles"]["models"]["sd"][100]),
    }


def test_tolerance_is_relative_or_absolute_and_counts_are_exact() -> None:
    tol = Tolerance(rel=1e-9, abs=1e-12)
    assert compare({"x": 1000.0}, {"x": 1000.0 * (1 + 5e-10)}, tol).agree
    assert not compare({"x": 1000.0}, {"x": 1000.0 * (1 + 5e-9)}, tol).agree
    assert compare({"x": 0.0}, {"x": 5e-13}, tol).agree
    assert not compare({"x": 0.0}, {"x": 5e-12}, tol).agree
    assert not compare({"jobs": 1_000_000_000}, {"jobs": 1_000_000_001}, tol).agree  # ints: exact
    assert compare({"x": math.nan}, {"x": math.nan}, tol).agree
    assert not compare({"x": math.nan}, {"x": 1.0}, tol).agree


def test_missing_keys_items_and_type_changes_are_differences() -> None:
    bundled = {"a": 1.0, "b": [1, 2, 3], "c": None, "d": "x", "e": True}
    recomputed = {"a": 1.0, "b": [1, 2], "c": 0.0, "d": "y", "e": 1, "f": {"g": 2}}
    diffs = {d.path: (d.bundled, d.recomputed) for d in compare(bundled, recomputed).differences}
    assert diffs == {"b[2]": (3, MISSING), "c": (None, 0.0), "d": ("x", "y"), "e": (True, 1),
                     "f": (MISSING, {"g": 2})}
    assert "bundled (absent)" in str(next(d for d in compare(bundled, recomputed).differences if d.path == "f"))
