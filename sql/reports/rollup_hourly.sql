-- Per model x niche x hour from the rollup states: jobs, cold starts, cost per image (priced at
-- query time like benchmark.sql), t-digest p50/p95/p99 latency. For dashboards and long ranges.
SELECT
    hour,
    model_id,
    niche,
    uniqExactMerge(jobs)                                           AS n_jobs,
    sumMerge(cold_starts)                                          AS n_cold_starts,
    sumMerge(gpu_seconds)                                          AS total_gpu_seconds,
    sum(cost_usd) / n_jobs                                         AS cost_per_image_usd,
    quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_ms)             AS latency_p50_p95_p99_ms
FROM
(
    SELECT
        hour, model_id, niche, jobs, cold_starts, gpu_seconds, latency_ms,
        if(provider = 'api',
           finalizeAggregation(api_cost_usd) + finalizeAggregation(jobs) * {platform_fee:Float64},
           finalizeAggregation(gpu_seconds)
               * transform(gpu_type, {gpu_types:Array(String)}, {gpu_prices:Array(Float64)}, nan) / 3600
               * (1 + {overhead:Float64}) + finalizeAggregation(jobs) * {platform_fee:Float64}) AS cost_usd
    FROM sentinel.jobs_hourly
    WHERE hour >= {start:DateTime64(3)} AND hour < {end:DateTime64(3)}
)
GROUP BY hour, model_id, niche
ORDER BY hour, model_id, niche
