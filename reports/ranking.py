"""Significance of the benchmark's orderings: for every pair of models, overall and per niche,
on each dimension, the bootstrap probability that one is better; shared ranks; who leads.

The draws are the report's own bootstrap (``reports.intervals``, same seed and resamples):

* cost per image, p95 latency, CLIP: the per-row job resamples behind the intervals;
* Human: per scope (all traffic = the pooled fit, a niche = that niche's fit), the models'
  log-strengths drawn *jointly* from N(theta, cov) of the Bradley–Terry fit
  (``sentinel.human.score_draws``); rows with too few ratings have no Human and no Human rank;
* composite: per draw, the row's weights applied to the drawn CLIP and Human and FID_score;
* FID: per model x niche, a bootstrap of FID's influence function over the row's stored
  embedding sample (the CMMD sample), centred on the point FID and scaled to the images behind
  it (``sentinel.significance_fid``); per model, the job-weighted mean of its niches' draws, as
  the point FID is. FID_score per draw through the niche's anchors enters the composite draws.
  Rows without a sample (or with ``significance_fid`` off) get no FID draws and no FID rank.

The math (pairwise probability, Holm over every (pair, dimension) test of a scope, rank ranges,
the leader sentence) is ``sentinel.significance``. Reproducible: the job draws come from the
intervals' seeded per-group generators; the Human draws of a scope from
``default_rng([seed, crc32("\\0human" NUL scope)])``, the FID draws of a row from
``default_rng([seed, crc32("\\0fid" model NUL niche)])``.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from reports.intervals import human_fit
from sentinel.bootstrap import BootstrapConfig, composite_draws, group_rng
from sentinel.composite import Anchors, CompositeWeights
from sentinel.human import score_draws
from sentinel.significance import DIMENSIONS, LEVEL, leader_sentence, rank_scope, rank_text
from sentinel.significance_fid import fid_draws, reference_root

ALL = "*"
FID_NOT_TESTED = "FID orderings not tested (significance_fid off): no FID ranks"


def row_fid_draws(models: list[dict[str, Any]], niches: list[dict[str, Any]],
                  fid_inputs: Mapping[tuple[str, str], tuple[np.ndarray, Any, Any]],
                  config: BootstrapConfig) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    """(model, niche or "*") -> {"fid", "fid_score"} draws (see the module docstring)."""
    out: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    roots: dict[str, np.ndarray] = {}  # one S_r^½ per niche
    if config.resamples == 0:
        return out
    for row in niches:
        key = (row["model"], row["niche"])
        if key not in fid_inputs or row.get("fid") is None:
            continue
        emb, ref, generated = fid_inputs[key]
        rng = group_rng(config.seed, "\0fid" + row["model"], row["niche"])
        if row["niche"] not in roots:
            roots[row["niche"]] = reference_root(ref.moments)
        fid = fid_draws(emb, generated, ref.moments, row["fid"], rng, config.resamples, roots[row["niche"]])
        a = ref.anchors
        out[key] = {"fid": fid, "fid_score": 100.0 * np.clip((a.fid_worst - fid) / (a.fid_worst - a.fid_best), 0, 1)}
    for row in models:
        mine = [r for r in niches if r["model"] == row["model"] and r.get("fid") is not None]
        if not mine or any((r["model"], r["niche"]) not in out for r in mine):
            continue
        w = np.array([r["jobs"] for r in mine], np.float64)
        out[(row["model"], ALL)] = {k: sum(wi * out[(r["model"], r["niche"])][k] for wi, r in zip(w, mine)) / w.sum()
                                    for k in ("fid", "fid_score")}
    return out


def _human_draws(quality: Mapping[str, Any], rows: list[dict[str, Any]], scope: str,
                 config: BootstrapConfig) -> dict[str, np.ndarray]:
    """Joint Human draws of the scope's rows that have a Human value."""
    with_human = [r for r in rows if r.get("human") is not None]
    if not with_human:
        return {}
    fit = human_fit(quality, with_human[0])
    if not fit or not fit.get("cov"):
        return {}
    draws = score_draws(fit, group_rng(config.seed, "\0human", scope), config.resamples)
    return {r["model"]: draws[r["model"]] for r in with_human if r["model"] in draws}


def scope_draws(rows: list[dict[str, Any]], scope: str, quality: Mapping[str, Any],
                job_draws: Mapping[tuple[str, str], Mapping[str, np.ndarray]],
                fid: Mapping[tuple[str, str], Mapping[str, np.ndarray]], weights: CompositeWeights,
                clip_anchor: Anchors, config: BootstrapConfig) -> dict[str, dict[str, np.ndarray | None]]:
    """dimension key -> model -> draws (None where the row has no value) for one scope."""
    human = _human_draws(quality, rows, scope, config)
    out: dict[str, dict[str, np.ndarray | None]] = {d.key: {} for d in DIMENSIONS}
    for row in rows:
        model = row["model"]
        jobs = job_draws.get((model, scope)) or {}

        def have(key: str, value: Any) -> Any:
            return value if row.get(key) is not None else None

        out["cost_per_image_usd"][model] = have("cost_per_image_usd", jobs.get("cost"))
        out["p95_latency_ms"][model] = have("p95_latency_ms", jobs.get("p95"))
        out["clip"][model] = have("clip", jobs.get("clip"))
        out["human"][model] = have("human", human.get(model))
        f = fid.get((model, scope)) or {}
        out["fid"][model] = have("fid", f.get("fid"))
        clip = jobs.get("clip")
        out["composite"][model] = (None if clip is None or row.get("composite") is None else
                                   composite_draws(row, clip, human.get(model), weights, clip_anchor,
                                                   f.get("fid_score")))
    return out


def add_significance(models: list[dict[str, Any]], niches: list[dict[str, Any]], quality: Mapping[str, Any],
                     job_draws: Mapping[tuple[str, str], Mapping[str, np.ndarray]], weights: CompositeWeights,
                     clip_anchor: Anchors, config: BootstrapConfig,
                     fid_inputs: Mapping[tuple[str, str], tuple[np.ndarray, Any, Any]] | None = None
                     ) -> dict[str, Any]:
    """Add ``rank_<dimension>`` keys ('1', '1–2', '–') to the rows (in place); return the
    report's ``significance`` section: per scope ("*" = all traffic, then each niche) the
    pairwise probabilities, separations, rank ranges, leaders and the leader sentence."""
    section: dict[str, Any] = {
        "enabled": config.resamples > 0, "level": LEVEL, "resamples": config.resamples, "seed": config.seed,
        "method": "bootstrap P(a better than b) over paired draws (ties 1/2); separated when the two-sided "
                  "p = 2 min(P, 1-P) passes Holm's test over every (pair, dimension) comparison of the scope "
                  "at family-wise 95%",
        "not_tested": {} if fid_inputs is not None else {"fid": FID_NOT_TESTED},
        "scopes": {}, "statements": []}
    if not section["enabled"]:
        return section
    fid = row_fid_draws(models, niches, fid_inputs or {}, config)
    scopes = [(ALL, models)] + [(n, [r for r in niches if r["niche"] == n])
                                for n in sorted({r["niche"] for r in niches})]
    for scope, rows in scopes:
        draws = scope_draws(rows, scope, quality, job_draws, fid, weights, clip_anchor, config)
        result = rank_scope(draws, LEVEL)
        result["statement"] = leader_sentence("all traffic" if scope == ALL else scope, result)
        section["scopes"][scope] = result
        section["statements"].append(result["statement"])
        for row in rows:
            for dim in DIMENSIONS:
                ranks = (result["dimensions"].get(dim.key) or {}).get("ranks") or {}
                row[f"rank_{dim.key}"] = rank_text(ranks.get(row["model"]))
    return section
