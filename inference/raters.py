"""SIMULATED raters for the demo: pairwise ratings drawn from planted model strengths.

No people rate anything in the demo. :func:`simulate_ratings` plays raters ``sim-rater-N``
who judge candidate job pairs by a Davidson–Bradley–Terry model with strengths the caller
plants (the same model ``sentinel.human.fit_bradley_terry`` fits, so the fit should recover
the planted ranking). The output says nothing about image quality: it exercises ingestion,
storage and the Bradley–Terry report. Every rater id starts with ``sim-``, which is how
``worker.ratings.pairwise_counts`` marks a report's human-eval numbers as simulated.

The rows have the fields of ``sentinel ratings import`` (rating_id, job_a, job_b, winner,
rater, time) and can be written as JSON Lines with :func:`write_ratings` or published with
``inference.ratings.publish_ratings`` after ``inference.ratings.parse_rating``.
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

SIM_PREFIX = "sim-rater-"
DEFAULT_START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def davidson_probabilities(theta_a: float, theta_b: float, tie_param: float) -> tuple[float, float, float]:
    """P(a wins), P(b wins), P(tie) for log-strengths theta_a, theta_b and Davidson's nu."""
    pa, pb = math.exp(theta_a), math.exp(theta_b)
    tie = tie_param * math.sqrt(pa * pb)
    d = pa + pb + tie
    return pa / d, pb / d, tie / d


def simulate_ratings(candidates: Sequence[tuple[str, str, str, str]], strengths: Mapping[str, float], *,
                     ratings_per_pair: int = 1, raters: int = 8, tie_param: float = 0.3, seed: int = 0,
                     swap_sides: bool = True, start: datetime = DEFAULT_START,
                     spacing_s: float = 7.0) -> list[dict[str, Any]]:
    """Simulated blind ratings of ``candidates`` [(job_a, job_b, model_a, model_b), ...].

    ``strengths``: planted log-strength (Bradley–Terry theta) per model id; a model without one
    is an error. For each candidate, ``ratings_per_pair`` distinct raters out of ``raters``
    (``sim-rater-0`` ...) each see the two jobs, in random left/right order when ``swap_sides``,
    and answer by Davidson's model with tie parameter ``tie_param`` (0: no ties). Deterministic:
    the same arguments give the same rows; a rating id is a UUID of (seed, jobs, rating index),
    so re-simulating the same pairs yields the same ids (stored once). ``time`` runs from
    ``start`` in steps of ``spacing_s`` seconds (ISO-8601 UTC, milliseconds).
    """
    if ratings_per_pair < 1 or raters < ratings_per_pair:
        raise ValueError(f"need 1 <= ratings_per_pair <= raters, got {ratings_per_pair} and {raters}")
    if tie_param < 0:
        raise ValueError(f"tie_param must be >= 0, got {tie_param}")
    missing = sorted({m for _, _, ma, mb in candidates for m in (ma, mb)} - set(strengths))
    if missing:
        raise KeyError(f"no planted strength for model(s) {missing}")
    rng = np.random.default_rng(seed)
    out: list[dict[str, Any]] = []
    for job_a, job_b, model_a, model_b in candidates:
        if model_a == model_b:
            raise ValueError(f"candidate {job_a}/{job_b}: both jobs are from {model_a!r}")
        who = rng.choice(raters, size=ratings_per_pair, replace=False)
        for k, rater in enumerate(who):
            left, right, m_left, m_right = job_a, job_b, model_a, model_b
            if swap_sides and rng.random() < 0.5:
                left, right, m_left, m_right = job_b, job_a, model_b, model_a
            p_a, p_b, _ = davidson_probabilities(strengths[m_left], strengths[m_right], tie_param)
            u = rng.random()
            winner = "a" if u < p_a else "b" if u < p_a + p_b else "tie"
            at = start + timedelta(seconds=spacing_s * len(out))
            out.append({
                "rating_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sentinel/sim-rating/{seed}/{job_a}/{job_b}/{k}")),
                "job_a": left,
                "job_b": right,
                "winner": winner,
                "rater": f"{SIM_PREFIX}{int(rater)}",
                "time": at.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            })
    return out


def write_ratings(rows: Iterable[Mapping[str, Any]], path: Path) -> int:
    """Write rating rows as JSON Lines (the `sentinel ratings import` format); returns how many."""
    n = 0
    with Path(path).open("w") as fh:
        for row in rows:
            fh.write(json.dumps(dict(row)) + "\n")
            n += 1
    return n
