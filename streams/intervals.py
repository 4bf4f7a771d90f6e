"""95% bootstrap confidence intervals for the benchmark's composite, cost per image and p95.

What is resampled, per group (each model, and each model x niche):

* **Jobs.** The group's jobs (latency, cost priced as in ``benchmark.sql``, CLIP score or
  none) come from ``sql/reports/bootstrap_jobs.sql``. Each of ``resamples`` (default 1000)
  bootstrap samples draws n jobs with replacement from the group's n jobs, and recomputes from
  that one draw the mean cost, the p95 of latency (``numpy.percentile``, linear
  interpolation — the report's exact quantile) and the mean CLIP score over the drawn jobs that
  have one. Jobs are resampled as units, so the three statistics share every draw.
* **Human (Bradley–Terry).** Ratings are pairwise across models, not per job, so they are not
  resampled with the jobs: each bootstrap sample draws the model's log-strength from
  N(theta, se²) — the normal approximation behind the fit's own Wald interval
  (``sentinel.human``), whose 2.5/97.5 percentiles map to the fit's ``score_low``/``score_high``
  — and maps it through the same 0–100 expected-score function with the fitted tie parameter.
  Drawn independently of the jobs (different data).
* **FID is held fixed** at its point estimate. The report computes FID from merged feature
  moments; a resampled FID needs the per-job embeddings (a scan of ``sentinel.scores``) and a
  covariance plus a D×D matrix square root per resample (D = 512 for ViT-B/32: ~1000
  eigendecompositions per group), and the bootstrap of FID is itself biased (duplicated jobs
  shrink the sample covariance). So the composite interval is **conditional on the FID
  component**: it covers CLIP (by job) and Human (by its fit's uncertainty) only, and is
  narrower than the full uncertainty whenever FID carries weight.

Composite per bootstrap sample = the point estimate's renormalized weights (those
``sentinel.composite.combine`` used for the row, missing components stay missing) applied to
FID_score (fixed), CLIP_score of the drawn mean CLIP and the drawn Human score. Every interval
is the percentile interval: the 2.5th and 97.5th percentiles (numpy, linear) of the bootstrap
statistics — for cost and p95 the same numbers as ``scipy.stats.bootstrap(method="percentile")``
given the group's generator (tested). A percentile interval usually contains the point estimate
but is not forced to (a p95 of a few dozen jobs can sit at the interval's edge). A group whose
jobs all cost the same (an API price) gets the degenerate interval [cost, cost]. A model row
resamples the model's jobs as one pool (the niche mix varies between draws, as it would between
quarters); the model's FID_score, a job-weighted mean over niches, is held fixed like FID.

Reproducible: the random stream of a group depends only on ``seed`` and the group's name
(``numpy.random.default_rng([seed, crc32(model NUL niche)])``) and the rows arrive in a fixed
order (model, niche, cityHash64(job_id), job_id); draws happen in a fixed order: the job
indices, ``resamples`` rows of n, then the ``resamples`` human draws. Same data and seed, same
intervals; another seed, other intervals.

Large windows: at most ``max_jobs`` (default 5,000) jobs per group are pulled — the first by
cityHash64(job_id), a deterministic pseudo-random sample (the model's sample and each niche's
are drawn separately, so a model's sample keeps its niche mix in expectation). A capped
group's interval reflects the sample's size, not the group's, so it is wider (conservative);
``ci_jobs`` in the JSON says how many jobs an interval rests on. A hash-rate prefilter in the
query keeps the large groups from being sorted whole. Cost: about 0.15 s of numpy per group of
5,000 jobs (groups run on a thread pool); on a synthetic 2M-job store (8 models x 3 niches)
the query took ~1.5 s. ``resamples = 0`` skips the intervals (no query).
"""

from __future__ import annotations

import math
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import numpy as np

import sql as sql_files
from sentinel.composite import Anchors, CompositeWeights, clip_component, combine
from sentinel.human import expected_score

LEVEL = 0.95
CI_KEYS = {  # row key -> its interval's key
    "composite": "composite_ci",
    "cost_per_image_usd": "cost_per_image_usd_ci",
    "p95_latency_ms": "p95_latency_ms_ci",
    "clip": "clip_ci",
}
_CELLS_PER_CHUNK = 4_000_000  # resample-index matrix cells held at once (32 MB of int64)


@dataclass(frozen=True)
class BootstrapConfig:
    resamples: int = 1000  # 0: no intervals
    seed: int = 0
    max_jobs: int = 5_000  # jobs per group pulled for the bootstrap

    def __post_init__(self) -> None:
        if self.resamples < 0 or self.max_jobs < 1:
            raise ValueError(f"bootstrap resamples must be >= 0 and max_jobs >= 1, got {self}")

    def as_dict(self) -> dict[str, Any]:
        return {"resamples": self.resamples, "seed": self.seed, "max_jobs_per_group": self.max_jobs}


def group_rng(seed: int, model: str, niche: str) -> np.random.Generator:
    """The random stream of one group: a function of the seed and the group's name only."""
    return np.random.default_rng([int(seed), zlib.crc32(f"{model}\0{niche}".encode())])


def resample_indices(rng: np.random.Generator, n: int, resamples: int) -> Iterator[np.ndarray]:
    """Bootstrap draws as (rows, n) index blocks; together ``resamples`` rows, drawn in order
    from ``rng`` (the same numbers as one ``rng.integers(0, n, (resamples, n))`` call)."""
    rows = max(1, _CELLS_PER_CHUNK // max(n, 1))
    for start in range(0, resamples, rows):
        yield rng.integers(0, n, size=(min(rows, resamples - start), n))


def bootstrap_stats(latency: np.ndarray, cost: np.ndarray, clip: np.ndarray, rng: np.random.Generator,
                    resamples: int) -> dict[str, np.ndarray]:
    """Per bootstrap sample: mean cost, p95 latency (linear) and mean CLIP over the drawn jobs
    that have a score (``clip`` NaN = unscored; NaN when a draw has none)."""
    latency, cost, clip = (np.asarray(a, np.float64) for a in (latency, cost, clip))
    n = len(latency)
    scored = ~np.isnan(clip)
    clip0 = np.where(scored, clip, 0.0)
    out: dict[str, list[np.ndarray]] = {"cost": [], "p95": [], "clip": []}
    for idx in resample_indices(rng, n, resamples):
        out["cost"].append(cost[idx].mean(axis=1))
        out["p95"].append(np.percentile(latency[idx], 95, axis=1))
        if scored.all():
            out["clip"].append(clip[idx].mean(axis=1))
            continue
        count = scored[idx].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["clip"].append(np.where(count > 0, clip0[idx].sum(axis=1) / count, np.nan))
    return {k: np.concatenate(v) if v else np.empty(0) for k, v in out.items()}


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> list[float] | None:
    """[lo, hi]: the (1-level)/2 and (1+level)/2 percentiles (linear) of the finite values."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return None
    lo, hi = np.percentile(v, [50 * (1 - level), 50 * (1 + level)])
    return [float(lo), float(hi)]


def human_draws(rng: np.random.Generator, fit_model: Mapping[str, Any] | None, tie_param: float,
                resamples: int) -> np.ndarray | None:
    """0-100 human scores from theta ~ N(strength, stderr²) through the fit's expected score."""
    if not fit_model:
        return None
    theta = rng.normal(fit_model["strength"], fit_model["stderr"], resamples)
    return 100.0 * expected_score(theta, tie_param)


def composite_draws(row: Mapping[str, Any], clip: np.ndarray, human: np.ndarray | None,
                    weights: CompositeWeights, clip_anchor: Anchors) -> np.ndarray | None:
    """Composite per bootstrap sample with the row's point-estimate weights and FID_score fixed."""
    point = combine({"fid": row.get("fid_score"),
                     "clip": None if row.get("clip") is None else clip_component(row["clip"], clip_anchor),
                     "human": row.get("human")}, weights)
    if point.composite is None:
        return None
    used = point.weights_used
    total = np.zeros(len(clip))
    if used["fid"] > 0:
        total += used["fid"] * point.components["fid"]  # type: ignore[operator]
    if used["clip"] > 0:
        t = (clip - clip_anchor.clip_floor) / (clip_anchor.clip_ceiling - clip_anchor.clip_floor)
        total += used["clip"] * 100.0 * np.clip(t, 0.0, 1.0)  # NaN stays NaN: dropped from the percentiles
    if used["human"] > 0:
        total += used["human"] * (np.clip(human, 0.0, 100.0) if human is not None else point.components["human"])
    return total


def group_intervals(row: Mapping[str, Any], latency: np.ndarray, cost: np.ndarray, clip: np.ndarray, *,
                    config: BootstrapConfig, weights: CompositeWeights, clip_anchor: Anchors,
                    human_fit: Mapping[str, Any] | None, tie_param: float) -> dict[str, Any]:
    """The interval keys of one report row (model, or model x niche) from its jobs."""
    out: dict[str, Any] = {key: None for key in CI_KEYS.values()}
    out["ci_jobs"] = int(len(latency))
    if config.resamples == 0 or len(latency) == 0:
        return out
    rng = group_rng(config.seed, row["model"], row.get("niche", "*"))
    stats = bootstrap_stats(latency, cost, clip, rng, config.resamples)
    human = human_draws(rng, human_fit, tie_param, config.resamples)
    # a constant cost (API price + fee) has a degenerate distribution: say so exactly, not
    # with the last-bit noise of 1000 float means
    out["cost_per_image_usd_ci"] = ([float(cost[0])] * 2 if np.all(cost == cost[0])
                                    else percentile_interval(stats["cost"]))
    out["p95_latency_ms_ci"] = percentile_interval(stats["p95"])
    out["clip_ci"] = percentile_interval(stats["clip"])
    comp = composite_draws(row, stats["clip"], human, weights, clip_anchor)
    out["composite_ci"] = None if comp is None else percentile_interval(comp)
    return out


def sample_rate(jobs: int, max_jobs: int) -> float:
    """Prefilter rate of a group: max_jobs plus 4 standard deviations (and 10) over its jobs."""
    return 1.0 if jobs <= max_jobs else min(1.0, (max_jobs + 4.0 * math.sqrt(max_jobs) + 10.0) / jobs)


def rate_params(counts: Mapping[tuple[str, str], int], max_jobs: int) -> dict[str, list]:
    """The prefilter parameters of ``bootstrap_jobs.sql`` from the jobs per (model, niche),
    niche "*" = the model. Groups that fit whole are left out (rate 1); a 'model/niche' key
    shared by two groups (a '/' in a name) gets the larger rate, so no sample comes up short."""
    models: dict[str, float] = {}
    groups: dict[str, float] = {}
    for (model, niche), jobs in counts.items():
        rate = sample_rate(int(jobs), max_jobs)
        if rate < 1.0:
            target, key = (models, model) if niche == "*" else (groups, f"{model}/{niche}")
            target[key] = max(rate, target.get(key, 0.0))
    return {"models": list(models), "model_rates": list(models.values()),
            "groups": list(groups), "group_rates": list(groups.values())}


def job_samples(reader: Any, params: Mapping[str, Any], max_jobs: int,
                counts: Mapping[tuple[str, str], int] | None = None) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    """Per (model, "*") and (model, niche): latency, cost, clip (NaN = unscored) arrays of the
    jobs ``bootstrap_jobs.sql`` returns for that group, in the query's order. ``counts`` (jobs
    per group, from the benchmark rows) sets the prefilter; without it every job is ranked."""
    table = reader.query(sql_files.report("bootstrap_jobs"),
                         {**params, "max_jobs": int(max_jobs), **rate_params(counts or {}, max_jobs)})
    cols = {name: table.column(name).to_numpy(zero_copy_only=False) for name in
            ("model", "niche", "in_model", "in_niche", "latency_ms", "cost_usd")}
    clip = table.column("clip").to_numpy(zero_copy_only=False)
    clip = np.array([np.nan if v is None else v for v in clip], np.float64) if clip.dtype == object \
        else clip.astype(np.float64)
    groups: dict[tuple[str, str], list[int]] = {}
    for i, (model, niche, in_model, in_niche) in enumerate(zip(cols["model"], cols["niche"], cols["in_model"],
                                                                cols["in_niche"])):
        if in_model:
            groups.setdefault((model, "*"), []).append(i)
        if in_niche:
            groups.setdefault((model, niche), []).append(i)
    latency = cols["latency_ms"].astype(np.float64)
    cost = cols["cost_usd"].astype(np.float64)
    return {key: {"latency": latency[idx], "cost": cost[idx], "clip": clip[idx]}
            for key, idx in ((k, np.asarray(v, np.intp)) for k, v in groups.items())}


def add_intervals(reader: Any, params: Mapping[str, Any], models: list[dict[str, Any]],
                  niches: list[dict[str, Any]], quality: Mapping[str, Any], weights: CompositeWeights,
                  clip_anchor: Anchors, config: BootstrapConfig = BootstrapConfig()) -> dict[str, Any]:
    """Add ``*_ci`` and ``ci_jobs`` keys to the report rows (in place); return the report's
    ``intervals`` section. ``params``: window, pricing and scorer_version, as for benchmark.sql."""
    fit = ((quality.get("human") or {}).get("fit") or {})
    per_model, tie = fit.get("models") or {}, float(fit.get("tie_param") or 0.0)
    rows = models + niches
    counts = {(r["model"], r.get("niche", "*")): r["jobs"] for r in rows}
    samples = job_samples(reader, params, config.max_jobs, counts) if config.resamples > 0 else {}
    empty = np.empty(0)

    def one(row: dict[str, Any]) -> dict[str, Any]:
        s = samples.get((row["model"], row.get("niche", "*")), {})
        return group_intervals(row, s.get("latency", empty), s.get("cost", empty), s.get("clip", empty),
                               config=config, weights=weights, clip_anchor=clip_anchor,
                               human_fit=per_model.get(row["model"]), tie_param=tie)

    # numpy releases the GIL in the heavy parts; each group has its own generator, so threads
    # change nothing in the numbers
    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        for row, result in zip(rows, pool.map(one, rows)):
            row.update(result)
    return {
        "method": "percentile bootstrap",
        "level": LEVEL,
        **config.as_dict(),
        "covers": "cost, p95 latency and CLIP: jobs resampled with replacement per group; composite: CLIP by "
                  "job and Human from N(theta, se) of the Bradley-Terry fit, FID held at its point estimate",
        "enabled": config.resamples > 0,
    }
