-- bootstrap_jobs.sql over sentinel.report_jobs / report_scores (sql/migrations/0012; used when every
-- score of the asked version(s) is placed at its job's hour): the same sample, rows and order.
-- cityHash64(job_id) is stored (h), so the prefilter reads no job ids, and the sample's scores
-- are found by h then matched on job_id. A request's cost is the sum over its guard_related
-- attempts (verdict, guard error, retry, discarded) plus, for an attempt that is not one, its
-- own cost: every attempt of a request, as long as a request's first attempt (job_id =
-- request_id) carries a verdict or guard error whenever the request has more attempts (the
-- guarded node always writes one).
--
-- Per-job rows behind the benchmark's bootstrap intervals (reports/intervals.py): end-to-end
-- latency, cost priced exactly as benchmark.sql prices it (same parameters, same function)
-- and the job's CLIP score (NULL when the job has no score of the requested version).
-- Delivered images only; each carries its request's cost (guard mode: discarded attempts
-- included; a request that failed every attempt has no row, so it is outside the interval).
--
-- At most {max_jobs} jobs per model and per model x niche: the group's jobs ordered by
-- cityHash64(job_id) (then job_id), the first {max_jobs}: a deterministic pseudo-random sample,
-- the whole group when it is smaller. in_model / in_niche say which sample a row belongs to
-- (the model's, the model x niche's, or both).
--
-- So that no window sorts every job of a large window, a prefilter keeps only jobs whose hash
-- (as a fraction u of 2^64) is below the group's rate: {models}/{model_rates} per model and
-- {groups}/{group_rates} per 'model/niche'; unlisted groups keep everything (rate 1). u is
-- monotone in the hash, so the prefilter keeps a hash-order prefix of each group; the caller
-- sets rates a few standard deviations above max_jobs / jobs, so the prefix almost always holds
-- max_jobs jobs (and when not, the sample is that whole prefix, never a different set).
WITH
    requests AS (
        SELECT
            guard_request_id AS request_id,
            sum(sentinel_job_cost_usd(provider, gpu_type, gpu_seconds, api_cost_usd, {gpu_types:Array(String)},
                                      {gpu_prices:Array(Float64)}, {overhead:Float64}, {platform_fee:Float64})) AS cost_usd
        FROM sentinel.report_jobs
        WHERE requested_at >= {start:DateTime64(3)} AND requested_at < {end:DateTime64(3)} AND guard_related
        GROUP BY guard_request_id
    ),
    j AS (
        SELECT
            job_id, model_id, niche, latency_ms,
            if(d.guard_related, 0., sentinel_job_cost_usd(provider, gpu_type, gpu_seconds, api_cost_usd,
                                                          {gpu_types:Array(String)}, {gpu_prices:Array(Float64)},
                                                          {overhead:Float64}, {platform_fee:Float64}))
                + ifNull(r.cost_usd, 0.)       AS cost_usd,
            d.h                                AS h,
            h / 18446744073709551616.0         AS u
        FROM sentinel.report_jobs AS d
        LEFT JOIN requests AS r ON r.request_id = if(d.guard_related, d.guard_request_id, d.job_id)
        WHERE requested_at >= {start:DateTime64(3)} AND requested_at < {end:DateTime64(3)} AND delivered
          AND (u < transform(model_id, {models:Array(String)}, {model_rates:Array(Float64)}, 1.0)
               OR u < transform(concat(model_id, '/', niche), {groups:Array(String)}, {group_rates:Array(Float64)}, 1.0))
    ),
    s AS (
        SELECT job_id, argMax(clip_prompt_score, scored_at) AS clip
        FROM sentinel.report_scores
        WHERE requested_at >= {start:DateTime64(3)} AND requested_at < {end:DateTime64(3)}
          AND h IN (SELECT h FROM j)
          AND ({scorer_version:String} = '' OR scorer_version = {scorer_version:String})
        GROUP BY job_id
    ),
    ranked AS (
        SELECT
            j.model_id                                   AS model,
            j.niche                                      AS niche,
            j.job_id                                     AS job_id,
            j.h                                          AS h,
            j.latency_ms                                 AS latency_ms,
            j.cost_usd                                   AS cost_usd,
            if(s.job_id != '', toNullable(s.clip), NULL) AS clip,
            row_number() OVER (PARTITION BY j.model_id ORDER BY j.h, j.job_id)          AS model_rank,
            row_number() OVER (PARTITION BY j.model_id, j.niche ORDER BY j.h, j.job_id) AS niche_rank
        FROM j
        LEFT JOIN s ON s.job_id = j.job_id
    )
SELECT
    model, niche, latency_ms, cost_usd, clip,
    model_rank <= {max_jobs:UInt64} AS in_model,
    niche_rank <= {max_jobs:UInt64} AS in_niche
FROM ranked
WHERE model_rank <= {max_jobs:UInt64} OR niche_rank <= {max_jobs:UInt64}
ORDER BY model, niche, h, job_id
