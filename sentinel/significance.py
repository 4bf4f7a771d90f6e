"""Which model is better than which, from bootstrap draws: pairwise probabilities, shared ranks
and the "leads outright" statement of one scope (all traffic, or one niche).

Input per dimension (FID, CLIP, Human, composite, cost per image, p95 latency) and model: an
array of that model's statistic in each bootstrap draw (``reports.ranking`` builds them from
``sentinel.bootstrap``). Draws of the same index are paired; they are independent between
models except for Human, whose draws come jointly from one Bradley–Terry fit.

* **P(a better than b)** = the fraction of draws in which a's statistic is better than b's
  (higher for CLIP/Human/composite, lower for FID/cost/p95), a tie counting one half; draws
  where either value is NaN are dropped.
* **Separated**: the two-sided bootstrap p-value 2·min(P, 1 - P) passes Holm's step-down test
  over *every* (pair, dimension) comparison of the scope at family-wise level 1 - ``level``
  (0.05): the scope's whole set of separations — every shared rank and the leader sentence — is
  right with probability at least 95%, rather than each claim alone (with six dimensions and a
  few models, uncorrected 95% tests would print a false separation in most reports).
* **Ranks**: a model's rank range is [1 + models separated above it, K - models separated below
  it] among the K models that have draws for that dimension; printed "2" when both ends agree,
  "1–2" (shared) when they do not.
* **Leads outright** on a dimension: rank range [1, 1] with at least two models ranked.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

LEVEL = 0.95


@dataclass(frozen=True)
class Dimension:
    key: str  # the report row key
    label: str
    higher_is_better: bool


DIMENSIONS = (
    Dimension("fid", "FID", False),
    Dimension("clip", "CLIP", True),
    Dimension("human", "Human", True),
    Dimension("composite", "composite", True),
    Dimension("cost_per_image_usd", "cost per image", False),
    Dimension("p95_latency_ms", "p95 latency", False),
)
BY_KEY = {d.key: d for d in DIMENSIONS}


def prob_better(a: np.ndarray, b: np.ndarray, higher_is_better: bool) -> float | None:
    """P(a's statistic is better than b's) over paired draws, ties one half; None without a
    draw where both are finite."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"draws must pair up: {a.shape} vs {b.shape}")
    ok = np.isfinite(a) & np.isfinite(b)
    if not ok.any():
        return None
    d = a[ok] - b[ok] if higher_is_better else b[ok] - a[ok]
    return float((np.sum(d > 0) + 0.5 * np.sum(d == 0)) / len(d))


def holm(p_values: list[float], alpha: float) -> list[bool]:
    """Holm's step-down rejections at family-wise level ``alpha``, in the input order."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    out = [False] * len(p_values)
    m = len(p_values)
    for step, i in enumerate(order):
        if p_values[i] > alpha / (m - step):
            break
        out[i] = True
    return out


def rank_text(rank: tuple[int, int] | list[int] | None) -> str:
    """'2' or '1–2' (en dash); '–' for no rank."""
    if not rank:
        return "–"
    lo, hi = rank
    return str(lo) if lo == hi else f"{lo}–{hi}"


def _pairs(draws: Mapping[str, Mapping[str, np.ndarray]]) -> list[dict[str, Any]]:
    out = []
    for key, per_model in draws.items():
        dim = BY_KEY[key]
        models = sorted(m for m, v in per_model.items() if v is not None)
        for a, b in itertools.combinations(models, 2):
            p = prob_better(per_model[a], per_model[b], dim.higher_is_better)
            if p is not None:
                out.append({"dimension": key, "a": a, "b": b, "p_a_better": p, "p_value": min(1.0, 2 * min(p, 1 - p))})
    return out


def rank_scope(draws: Mapping[str, Mapping[str, np.ndarray | None]], level: float = LEVEL) -> dict[str, Any]:
    """Pairwise probabilities, separations, rank ranges and leaders of one scope.

    ``draws``: dimension key -> model -> its bootstrap draws (None: no value for that model).
    Returns ``{"level", "tests", "dimensions": {key: {"ranks": {model: [lo, hi]}, "leader":
    model or None, "pairs": [{"a", "b", "p_a_better", "p_value", "separated"}]}}, "leads":
    {model: [dimension keys]}}``; dimensions with fewer than two models are left out.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    pairs = _pairs(draws)
    for pair, sep in zip(pairs, holm([p["p_value"] for p in pairs], 1 - level)):
        pair["separated"] = sep
    dims: dict[str, Any] = {}
    leads: dict[str, list[str]] = {}
    for dim in DIMENSIONS:
        mine = [p for p in pairs if p["dimension"] == dim.key]
        models = sorted({p["a"] for p in mine} | {p["b"] for p in mine})
        if len(models) < 2:
            continue
        above = {m: 0 for m in models}
        below = {m: 0 for m in models}
        for p in mine:
            if p["separated"]:
                win, lose = (p["a"], p["b"]) if p["p_a_better"] > 0.5 else (p["b"], p["a"])
                above[lose] += 1
                below[win] += 1
        ranks = {m: [1 + above[m], len(models) - below[m]] for m in models}
        leader = next((m for m, r in ranks.items() if r == [1, 1]), None)
        if leader is not None:
            leads.setdefault(leader, []).append(dim.key)
        dims[dim.key] = {"ranks": ranks, "leader": leader,
                         "pairs": [{k: v for k, v in p.items() if k != "dimension"} for p in mine]}
    return {"level": level, "tests": len(pairs), "dimensions": dims, "leads": leads}


def leader_sentence(scope: str, result: Mapping[str, Any]) -> str:
    """'headshot: flux leads outright on composite and cost per image; not separated on CLIP.'"""
    dims = result.get("dimensions") or {}
    if not dims:
        return f"{scope}: fewer than two models to compare."
    parts = []
    for model, keys in sorted((result.get("leads") or {}).items()):
        parts.append(f"{model} leads outright on {_join([BY_KEY[k].label for k in keys])}")
    led = {k for keys in (result.get("leads") or {}).values() for k in keys}
    shared = [BY_KEY[k].label for k in dims if k not in led]
    if not parts:
        return f"{scope}: no model leads outright on any dimension (top ranks shared at {result['level']:.0%})."
    tail = f"; no outright leader on {_join(shared)}" if shared else ""
    return f"{scope}: " + "; ".join(parts) + tail + "."


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
