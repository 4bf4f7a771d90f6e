-- Per model x niche x hour from the rollup states: jobs, cold starts, cost per image (priced at
-- query time like benchmark.sql), t-digest p50/p95/p99 latency. For dashboards and long ranges.
-- A rollup row holds sums, not jobs: since the cost formula is linear in a job's GPU-seconds and
-- API price, the row's cost is its job count times the cost of its mean job.
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
        finalizeAggregation(jobs) AS row_jobs,
        row_jobs * sentinel_job_cost_usd(provider, gpu_type, finalizeAggregation(gpu_seconds) / row_jobs,
                                         finalizeAggregation(api_cost_usd) / row_jobs, {gpu_types:Array(String)},
                                         {gpu_prices:Array(Float64)}, {overhead:Float64}, {platform_fee:Float64}) AS cost_usd
    FROM sentinel.jobs_hourly
    WHERE hour >= {start:DateTime64(3)} AND hour < {end:DateTime64(3)}
)
GROUP BY hour, model_id, niche
ORDER BY hour, model_id, niche
