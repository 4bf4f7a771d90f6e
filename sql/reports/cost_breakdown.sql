-- Cost per image per model, split into its parts (same pricing parameters as benchmark.sql):
-- GPU compute (gpu_seconds x price), orchestration overhead (compute x overhead), platform fee,
-- and the API price for API-priced models. The parts add up to cost_per_image_usd.
SELECT
    model_id                                                                  AS model,
    count()                                                                   AS jobs,
    avg(gpu_seconds)                                                          AS gpu_seconds_per_image,
    avg(compute_usd)                                                          AS gpu_compute_usd,
    avg(compute_usd) * {overhead:Float64}                                     AS orchestration_usd,
    {platform_fee:Float64}                                                    AS platform_fee_usd,
    avg(api_usd)                                                              AS api_price_usd,
    avg(compute_usd) * (1 + {overhead:Float64}) + {platform_fee:Float64} + avg(api_usd) AS cost_per_image_usd
FROM
(
    SELECT
        model_id, gpu_seconds,
        if(provider = 'api', 0.,
           gpu_seconds * transform(gpu_type, {gpu_types:Array(String)}, {gpu_prices:Array(Float64)}, nan) / 3600) AS compute_usd,
        if(provider = 'api', ifNull(api_cost_usd, nan), 0.)                  AS api_usd
    FROM sentinel.jobs FINAL
    WHERE requested_at >= {start:DateTime64(3)} AND requested_at < {end:DateTime64(3)}
)
GROUP BY model_id
ORDER BY model
