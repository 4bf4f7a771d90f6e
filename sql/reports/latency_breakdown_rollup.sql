-- latency_breakdown.sql over sentinel.report_jobs (sql/migrations/0012: one narrow row per job,
-- queue and delivery times stored as the same dateDiff values), same rows, same exact quantiles.
--
-- End-to-end latency per model and its parts (exact quantiles, ms): queue (requested ->
-- started), cold start, inference, encode (node side), delivery (completed -> delivered).
SELECT
    model_id                                                                         AS model,
    count()                                                                          AS jobs,
    countIf(cold_start) / count()                                                    AS cold_start_rate,
    quantileExactInclusive(0.5)(latency_ms)                                          AS e2e_p50_ms,
    quantileExactInclusive(0.95)(latency_ms)                                         AS e2e_p95_ms,
    quantileExactInclusive(0.5)(queue_ms)   AS queue_p50_ms,
    quantileExactInclusive(0.95)(queue_ms)  AS queue_p95_ms,
    quantileExactInclusiveIf(0.95)(cold_start_ms, cold_start)                        AS cold_start_p95_ms,
    quantileExactInclusive(0.5)(ifNull(inference_ms, nan))                           AS inference_p50_ms,
    quantileExactInclusive(0.95)(ifNull(inference_ms, nan))                          AS inference_p95_ms,
    quantileExactInclusive(0.95)(ifNull(encode_ms, nan))                             AS encode_p95_ms,
    quantileExactInclusive(0.95)(delivery_ms) AS delivery_p95_ms
FROM sentinel.report_jobs
WHERE requested_at >= {start:DateTime64(3)} AND requested_at < {end:DateTime64(3)}
  AND delivered  -- guard mode: delivered attempts (their queue part holds the earlier attempts)
GROUP BY model_id
ORDER BY model
