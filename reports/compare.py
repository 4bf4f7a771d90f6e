"""Number-by-number comparison of two reports (plain JSON data), for `sentinel bundle verify`.

A recursive walk over whatever the report holds -- no list of fields, so a column added to the
report later is compared too. Floats agree when ``|a - b| <= max(rel * max(|a|, |b|), abs)``
(``math.isclose``); NaN agrees with NaN; two integers (counts) must be equal; strings, booleans
and None must be equal. A key or list item present on one side only is a difference. Paths read
like ``models[flux-dev].composite_ci[1]``: a list item that is a dict with a ``model`` (and
``niche``) is named by them instead of its position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

MISSING = object()


@dataclass(frozen=True)
class Tolerance:
    """Every number of the report is deterministic given the bundle (exact SQL quantiles, seeded
    bootstrap over rows in a fixed order), so the only slack needed is for floating-point
    summation order (ClickHouse sums in parallel) and the FID matrix square root: 1e-9."""

    rel: float = 1e-9
    abs: float = 1e-9

    def agree(self, a: float, b: float) -> bool:
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=self.rel, abs_tol=self.abs)


@dataclass(frozen=True)
class Difference:
    path: str
    bundled: Any
    recomputed: Any

    def __str__(self) -> str:
        def show(v: Any) -> str:
            text = "(absent)" if v is MISSING else repr(v)
            return text if len(text) <= 120 else text[:117] + "..."

        return f"{self.path}: bundled {show(self.bundled)}, recomputed {show(self.recomputed)}"


@dataclass
class Comparison:
    differences: list[Difference] = field(default_factory=list)
    numbers: int = 0  # numbers compared (either side a number)

    @property
    def agree(self) -> bool:
        return not self.differences


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _item_label(i: int, item: Any) -> str:
    if isinstance(item, dict) and isinstance(item.get("model"), str):
        niche = item.get("niche")
        return f"[{item['model']}/{niche}]" if isinstance(niche, str) else f"[{item['model']}]"
    return f"[{i}]"


def compare(bundled: Any, recomputed: Any, tolerance: Tolerance = Tolerance()) -> Comparison:
    """Every place where ``recomputed`` differs from ``bundled`` beyond ``tolerance``."""
    result = Comparison()
    _walk(bundled, recomputed, "", tolerance, result)
    return result


def _walk(a: Any, b: Any, path: str, tol: Tolerance, out: Comparison) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            _walk(a.get(key, MISSING), b.get(key, MISSING), f"{path}.{key}" if path else str(key), tol, out)
        return
    if isinstance(a, list) and isinstance(b, list):
        for i in range(max(len(a), len(b))):
            x = a[i] if i < len(a) else MISSING
            y = b[i] if i < len(b) else MISSING
            _walk(x, y, path + _item_label(i, x if x is not MISSING else y), tol, out)
        return
    if _is_number(a) or _is_number(b):
        out.numbers += 1
        if _is_number(a) and _is_number(b):
            same = a == b if isinstance(a, int) and isinstance(b, int) else tol.agree(float(a), float(b))
        else:
            same = False
        if not same:
            out.differences.append(Difference(path, a, b))
        return
    if a is MISSING or b is MISSING or type(a) is not type(b) or a != b:
        out.differences.append(Difference(path, a, b))
