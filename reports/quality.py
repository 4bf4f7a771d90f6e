"""Quality columns of the benchmark: FID, CMMD, human (Bradley–Terry) and the composite.

Inputs all come from the warehouse: per-bucket FID moments merged over the window
(``sql/reports/feature_moments.sql``), a deterministic sample of stored embeddings for CMMD
(``embedding_sample.sql``), the niche reference sets (``reference_sets.sql``) and pairwise
ratings (``warehouse.ratings``). The math is ``sentinel``'s.

Per model x niche: FID and CMMD against the niche's reference set; FID_score normalized with
that reference's anchors. Per model: FID, FID_score and CMMD are the job-weighted means over
the model's niches that have a reference (FID is defined per niche; a pooled FID across
niches would mostly measure the niche mix). Human: per model x niche, a Bradley–Terry fit of
that niche's ratings (``sentinel.human.fit_niches``; a model with fewer than
``human_min_ratings`` ratings in the niche gets no number but ``human_note`` "too few ratings:
n=.."); per model, one fit pooled over all of the window's ratings. ``human_ci`` is the fit's
95% Wald interval on 0–100 and ``human_n`` the ratings it rests on. The composite combines the
0–100 components with the configured weights; a missing component renormalizes the others
and is listed in ``composite_missing``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import sql as sql_files
from sentinel.cmmd import cmmd
from sentinel.composite import Anchors, QualityConfig, clip_component, combine, fid_score
from sentinel.fid import fid
from sentinel.human import fit_bradley_terry, fit_niches, too_few_note
from warehouse.moment_reads import window_moments
from warehouse.ratings import pairwise_counts, pairwise_counts_by_niche
from warehouse.references import extractor_id, load_references


class UnknownScorerVersion(ValueError):
    """A report asked for a scorer version under which no scores are stored."""


def require_scorer_version(reader: Any, requested: str) -> None:
    """UnknownScorerVersion naming the stored versions unless ``requested`` ('' = latest per job)
    has scores: a report of a version never scored would be empty without a word."""
    if not requested:
        return
    stored = reader.query(sql_files.report("scorer_versions")).to_pylist()
    if any(row["scorer_version"] == requested for row in stored):
        return
    listed = "; ".join(f"{row['scorer_version']} ({row['jobs']:,} jobs, latest {row['latest']:%Y-%m-%d %H:%M} UTC)"
                       for row in stored)
    raise UnknownScorerVersion(f"no scores stored under scorer version {requested!r}; "
                               + (f"stored versions, newest first: {listed}" if stored else "no scores are stored yet")
                               + " (omit --scorer-version for each job's latest score)")


def resolve_version(reader: Any, requested: str) -> str | None:
    """The scorer version whose FID moments to use: the one asked for, else the newest."""
    if requested:
        return requested
    rows = reader.query(sql_files.report("moment_versions")).to_pylist()
    return rows[0]["scorer_version"] if rows else None


def _weighted(rows: list[dict[str, Any]], key: str) -> float | None:
    pairs = [(r["jobs"], r[key]) for r in rows if r.get(key) is not None and math.isfinite(r[key])]
    total = sum(w for w, _ in pairs)
    return sum(w * v for w, v in pairs) / total if total else None


def _pairs(counts: Any) -> list[dict[str, Any]]:
    return [{"model_a": a, "model_b": b, "a_wins": wa, "b_wins": wb, "ties": t, "n": wa + wb + t}
            for (a, b), (wa, wb, t) in sorted(counts.unordered().items())]


def _human(reader: Any, window: Any, min_ratings: int) -> dict[str, Any]:
    """The report's human section: the pooled fit (per model rows) and one fit per niche."""
    counts, info = pairwise_counts(reader, window)
    info = {**info, "min_ratings_per_niche": min_ratings, "fit": None, "niches": {}}
    if counts.total == 0 or len(counts.models) < 2:
        return info
    info.update(fit=fit_bradley_terry(counts).to_dict(), pairs=_pairs(counts))
    by_niche = pairwise_counts_by_niche(reader, window)
    for niche, h in fit_niches(by_niche, min_ratings=min_ratings).items():
        info["niches"][niche] = {"ratings": h["ratings"], "fit": h["fit"].to_dict() if h["fit"] else None,
                                 "n": h["n"], "enough": h["enough"], "pairs": _pairs(by_niche[niche])}
    return info


def _set_human(row: dict[str, Any], human: dict[str, Any]) -> None:
    """human / human_ci / human_n (/ human_note) of one row: the pooled fit for a model row,
    the niche's fit for a model x niche row (or the too-few-ratings note)."""
    row.update(human=None, human_ci=None, human_n=0, human_note=None)
    if not human.get("fit"):
        return
    model, niche = row["model"], row.get("niche")
    if niche is None:
        fit, n, enough = human["fit"], None, True
    else:
        h = human["niches"].get(niche) or {"fit": None, "n": {}, "enough": {}}
        fit, n, enough = h["fit"], h["n"].get(model, 0), h["enough"].get(model, False)
    m = (fit or {}).get("models", {}).get(model)
    if not enough or m is None:
        row.update(human_n=n or 0, human_note=too_few_note(n or 0))
        return
    row.update(human=m["score"], human_ci=[m["score_low"], m["score_high"]], human_n=m["n"])


def add_quality(reader: Any, window: Any, models: list[dict[str, Any]], niches: list[dict[str, Any]],
                scorer_version: str, config: QualityConfig = QualityConfig(),
                fid_inputs: dict[tuple[str, str], tuple[np.ndarray, Any, Any]] | None = None) -> dict[str, Any]:
    """Add fid/fid_score/cmmd/human/composite keys to the report rows (in place); return the
    report's quality section (version, references and anchors, weights, human fit).
    ``fid_inputs`` (when given) receives per (model, niche) with an FID the embedding sample, the
    reference (``ReferenceStats``) and the generated moments, for ``reports.ranking``'s FID draws."""
    params = window.params()
    version = resolve_version(reader, scorer_version)
    extractor = extractor_id(version) if version else None
    refs = load_references(reader, extractor) if extractor else {}
    moments = window_moments(reader, version, params) if version else {}
    samples: dict[tuple[str, str], list] = {}
    if version and refs:
        table = reader.query(sql_files.report("embedding_sample"),
                             {**params, "scorer_version": version, "per_group": config.cmmd_sample})
        for row in table.to_pylist():
            samples.setdefault((row["model"], row["niche"]), []).append(row["embedding"])
    human_info = _human(reader, window, config.human_min_ratings)

    for row in niches:
        key = (row["model"], row["niche"])
        ref, m = refs.get(row["niche"]), moments.get(key)
        row["fid"] = fid(m, ref.moments) if ref is not None and m is not None and m.n >= 2 else None
        row["fid_score"] = None if row["fid"] is None else fid_score(row["fid"], ref.anchors)  # type: ignore[union-attr]
        emb = samples.get(key)
        row["cmmd"] = (cmmd(np.asarray(emb, np.float64), ref.embeddings.astype(np.float64))
                       if ref is not None and emb is not None and len(emb) >= 2 and len(ref.embeddings) >= 2 else None)
        row["fid_images"] = m.n if m is not None else 0
        if fid_inputs is not None and row["fid"] is not None and emb is not None and len(emb) >= 2:
            fid_inputs[key] = (np.asarray(emb, np.float64), ref, m)
    by_model: dict[str, list[dict[str, Any]]] = {}
    for row in niches:
        by_model.setdefault(row["model"], []).append(row)
    for row in models:
        rows = by_model.get(row["model"], [])
        row["fid"] = _weighted(rows, "fid")
        row["fid_score"] = _weighted(rows, "fid_score")
        row["cmmd"] = _weighted(rows, "cmmd")
        row["fid_images"] = sum(r["fid_images"] for r in rows)
    clip_anchor = Anchors(fid_best=0.0, fid_worst=1.0, clip_floor=config.clip_floor, clip_ceiling=config.clip_ceiling)
    for row in models + niches:
        _set_human(row, human_info)
        clip = row.get("clip")
        result = combine({"fid": row["fid_score"],
                          "clip": None if clip is None else clip_component(clip, clip_anchor),
                          "human": row["human"]}, config.weights)
        row["composite"] = result.composite
        row["composite_missing"] = list(result.missing)
    return {
        "scorer_version": version,
        "extractor": extractor,
        "weights": config.weights.as_dict(),
        "clip_range": {"floor": config.clip_floor, "ceiling": config.clip_ceiling},
        "references": {niche: {"n": r.n, "fid_best": r.fid_best, "fid_worst": r.fid_worst}
                       for niche, r in sorted(refs.items())},
        "human": human_info,
    }
