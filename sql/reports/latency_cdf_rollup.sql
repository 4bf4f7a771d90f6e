-- latency_cdf.sql from the report rollups (sql/migrations/0012): delivered latencies as (value,
-- count) rows, monthly histograms for the window's whole months and one row per job from
-- report_jobs for the rest; sentinel_hist_quantile gives quantileExactInclusive's numbers.
--
-- The empirical distribution of end-to-end latency (requested -> delivered, cold starts
-- included) per model, for the report's CDF chart: 101 exact quantiles at the levels
-- 0, 0.01, ..., 1 (quantileExactInclusive: linear interpolation, numpy's default percentile),
-- so level 0 is the fastest job and level 1 the slowest.
WITH
    hist AS (
        SELECT model_id, latency_ms, n
        FROM sentinel.report_latency_monthly
        WHERE month >= {months_start:DateTime64(3)} AND month < {months_end:DateTime64(3)}
        UNION ALL
        SELECT model_id, latency_ms, toUInt64(1)
        FROM sentinel.report_jobs
        WHERE delivered
          AND ((requested_at >= {start:DateTime64(3)} AND requested_at < {months_start:DateTime64(3)})
               OR (requested_at >= {months_end:DateTime64(3)} AND requested_at < {end:DateTime64(3)}))
    ),
    h AS (
        SELECT model_id,
               arraySort(x -> x.1, groupArray((latency_ms, n))) AS pairs,
               arrayMap(x -> x.1, pairs) AS vals, arrayCumSum(arrayMap(x -> x.2, pairs)) AS cum
        FROM (SELECT model_id, latency_ms, sum(n) AS n FROM hist GROUP BY model_id, latency_ms)
        GROUP BY model_id
    ),
    q AS (  -- one row per (model, level), each quantile one pass over the model's histogram
        SELECT model_id, cum[-1] AS jobs, level, sentinel_hist_quantile(vals, cum, level) AS value
        FROM h
        ARRAY JOIN [
        0.00, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09,
        0.10, 0.11, 0.12, 0.13, 0.14, 0.15, 0.16, 0.17, 0.18, 0.19,
        0.20, 0.21, 0.22, 0.23, 0.24, 0.25, 0.26, 0.27, 0.28, 0.29,
        0.30, 0.31, 0.32, 0.33, 0.34, 0.35, 0.36, 0.37, 0.38, 0.39,
        0.40, 0.41, 0.42, 0.43, 0.44, 0.45, 0.46, 0.47, 0.48, 0.49,
        0.50, 0.51, 0.52, 0.53, 0.54, 0.55, 0.56, 0.57, 0.58, 0.59,
        0.60, 0.61, 0.62, 0.63, 0.64, 0.65, 0.66, 0.67, 0.68, 0.69,
        0.70, 0.71, 0.72, 0.73, 0.74, 0.75, 0.76, 0.77, 0.78, 0.79,
        0.80, 0.81, 0.82, 0.83, 0.84, 0.85, 0.86, 0.87, 0.88, 0.89,
        0.90, 0.91, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99,
        1.00
    ] AS level
    )
SELECT
    model_id                                              AS model,
    any(jobs)                                             AS jobs,
    arrayMap(x -> x.2, arraySort(groupArray((level, value)))) AS latency_ms
FROM q
GROUP BY model_id
ORDER BY model
