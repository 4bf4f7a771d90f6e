-- cost_breakdown.sql over sentinel.report_jobs (sql/migrations/0012: one narrow row per job, no
-- FINAL needed); same rows, same functions.
--
-- Cost per image per model, split into its parts (same pricing parameters as benchmark.sql; the
-- parts and the total are the functions of sql/functions.sql): GPU compute (gpu_seconds x price),
-- orchestration overhead (compute x overhead), platform fee, and the API price for API-priced
-- models. The parts add up to cost_per_image_usd (to rounding). Per delivered image: every
-- attempt's cost (guard mode's discarded ones too) / delivered images, as in benchmark.sql.
SELECT
    model_id                       AS model,
    countIf(delivered)                           AS jobs,
    sum(gpu_seconds) / nullIf(jobs, 0)           AS gpu_seconds_per_image,
    sum(compute_usd) / nullIf(jobs, 0)           AS gpu_compute_usd,
    sum(orchestration_usd) / nullIf(jobs, 0)     AS orchestration_usd,
    {platform_fee:Float64} * count() / nullIf(jobs, 0) AS platform_fee_usd,
    sum(api_usd) / nullIf(jobs, 0)               AS api_price_usd,
    sum(cost_usd) / nullIf(jobs, 0)              AS cost_per_image_usd
FROM
(
    SELECT
        model_id, gpu_seconds, delivered,
        sentinel_gpu_compute_usd(provider, gpu_type, gpu_seconds, {gpu_types:Array(String)},
                                 {gpu_prices:Array(Float64)})                                   AS compute_usd,
        sentinel_orchestration_usd(provider, gpu_type, gpu_seconds, {gpu_types:Array(String)},
                                   {gpu_prices:Array(Float64)}, {overhead:Float64})            AS orchestration_usd,
        sentinel_api_price_usd(provider, api_cost_usd)                                          AS api_usd,
        sentinel_job_cost_usd(provider, gpu_type, gpu_seconds, api_cost_usd, {gpu_types:Array(String)},
                              {gpu_prices:Array(Float64)}, {overhead:Float64}, {platform_fee:Float64}) AS cost_usd
    FROM sentinel.report_jobs
    WHERE requested_at >= {start:DateTime64(3)} AND requested_at < {end:DateTime64(3)}
)
GROUP BY model_id
ORDER BY model
