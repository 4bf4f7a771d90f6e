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
  A model row draws from the pooled fit, a model x niche row from its niche's fit.
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
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Mapping

import numpy as np

from reports import rollups
from sentinel.bootstrap import LEVEL, BootstrapConfig, group_intervals
from sentinel.composite import Anchors, CompositeWeights

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
    table = rollups.query(reader, "bootstrap_jobs",
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


def human_fit(quality: Mapping[str, Any], row: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The Bradley–Terry fit (``BTResult.to_dict``) behind a row's Human: the pooled fit for a
    model row, the niche's fit for a model x niche row; None where the row has no Human."""
    if row.get("human") is None:
        return None
    human = quality.get("human") or {}
    if row.get("niche") is None:
        return human.get("fit")
    return ((human.get("niches") or {}).get(row["niche"]) or {}).get("fit")


def add_intervals(reader: Any, params: Mapping[str, Any], models: list[dict[str, Any]],
                  niches: list[dict[str, Any]], quality: Mapping[str, Any], weights: CompositeWeights,
                  clip_anchor: Anchors, config: BootstrapConfig = BootstrapConfig(),
                  draws: dict[tuple[str, str], dict[str, np.ndarray]] | None = None) -> dict[str, Any]:
    """Add ``*_ci`` and ``ci_jobs`` keys to the report rows (in place); return the report's
    ``intervals`` section. ``params``: window, pricing and scorer_version, as for benchmark.sql.
    ``draws`` (when given) receives per (model, niche or "*") the bootstrap draws of cost, p95
    and clip behind the intervals (for ``reports.ranking``)."""
    rows = models + niches
    counts = {(r["model"], r.get("niche", "*")): r["jobs"] for r in rows}
    samples = job_samples(reader, params, config.max_jobs, counts) if config.resamples > 0 else {}
    empty = np.empty(0)

    def one(row: dict[str, Any]) -> dict[str, Any]:
        s = samples.get((row["model"], row.get("niche", "*")), {})
        fit = human_fit(quality, row)
        return group_intervals(row, s.get("latency", empty), s.get("cost", empty), s.get("clip", empty),
                               config=config, weights=weights, clip_anchor=clip_anchor,
                               human_fit=(fit.get("models") or {}).get(row["model"]) if fit else None,
                               tie_param=float(fit.get("tie_param") or 0.0) if fit else 0.0,
                               draws_out=None if draws is None else draws[(row["model"], row.get("niche", "*"))])

    # numpy releases the GIL in the heavy parts; each group has its own generator, so threads
    # change nothing in the numbers
    if draws is not None:
        draws.update({(r["model"], r.get("niche", "*")): {} for r in rows})
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
