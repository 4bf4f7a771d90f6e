-- Quality, cost and latency per model (niche = '*') and per model x niche.
-- Cost is priced at query time by sentinel_job_cost_usd (sql/functions.sql) from the pricing file
-- (parallel arrays gpu_types/gpu_prices), so a new price list re-prices history; an unpriced GPU
-- type yields NaN, never a silent 0.
-- Latency quantiles are exact (linear interpolation, as numpy's default percentile).
-- scorer_version = '' takes each job's most recent score.
-- Guard mode (sql/migrations/0009): jobs, CLIP and latency count delivered images only; cost per
-- image is the cost of every attempt (discarded ones included) / delivered images, so a model
-- that needs two attempts per delivered image costs twice as much. Unguarded jobs are all
-- delivered, one attempt each: for them this is the plain mean.
WITH
    j AS (
        SELECT
            job_id, model_id, model_version, provider, niche, latency_ms, delivered,
            sentinel_job_cost_usd(provider, gpu_type, gpu_seconds, api_cost_usd, {gpu_types:Array(String)},
                                  {gpu_prices:Array(Float64)}, {overhead:Float64}, {platform_fee:Float64}) AS cost_usd
        FROM sentinel.jobs FINAL
        WHERE requested_at >= {start:DateTime64(3)} AND requested_at < {end:DateTime64(3)}
    ),
    s AS (
        SELECT job_id, argMax(clip_prompt_score, scored_at) AS clip
        FROM sentinel.scores FINAL
        WHERE {scorer_version:String} = '' OR scorer_version = {scorer_version:String}
        GROUP BY job_id
    )
SELECT
    j.model_id                                   AS model,
    if(grouping(j.niche) = 1, '*', j.niche)      AS niche,
    any(j.model_version)                         AS model_version,
    any(j.provider)                              AS provider,
    countIf(j.delivered)                         AS jobs,
    countIf(s.job_id != '' AND j.delivered)      AS scored,
    avgIf(s.clip, s.job_id != '' AND j.delivered) AS clip,
    quantileExactInclusiveIf(0.5)(j.latency_ms, j.delivered)  AS p50_latency_ms,
    quantileExactInclusiveIf(0.95)(j.latency_ms, j.delivered) AS p95_latency_ms,
    sum(j.cost_usd) / nullIf(countIf(j.delivered), 0)         AS cost_per_image_usd
FROM j
LEFT JOIN s ON s.job_id = j.job_id
GROUP BY GROUPING SETS ((j.model_id), (j.model_id, j.niche))
ORDER BY model, niche = '*' DESC, niche
