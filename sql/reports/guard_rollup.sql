-- guard.sql over sentinel.report_jobs (sql/migrations/0012): only its guard_related rows (verdict,
-- guard error, retry or discarded attempt), which hold every attempt of every guarded request as
-- long as a request's first attempt (job_id = request_id) carries a verdict or guard error
-- whenever the request has more attempts (the guarded node always writes one).
--
-- Guard mode per model (niche = '*') and per model x niche, over guarded requests only (a
-- request with at least one attempt that asked the guard: a verdict or a guard error).
--   first_attempt_pass_rate = requests whose attempt 1 passed / requests whose attempt 1 got a verdict
--   attempts_per_delivered  = attempts / delivered images
--   cost_per_delivered_usd  = cost of every attempt (sentinel_job_cost_usd, discarded attempts and
--                             requests that failed every attempt included) / delivered images
--   failed_requests         = requests with no delivered image (every attempt failed)
--   unguarded               = attempts delivered without a verdict (guard unavailable)
--   p95_added_latency_ms    = p95 over delivered requests of what guarding added to requested ->
--                             delivered: the delivered attempt's latency minus (attempt 1's latency
--                             minus its verdict call), i.e. discarded attempts + verdict calls.
WITH
    a AS (
        SELECT
            guard_request_id AS request_id, model_id, niche, attempt, delivered, guard_passed, guard_errored, guard_ms, latency_ms,
            sentinel_job_cost_usd(provider, gpu_type, gpu_seconds, api_cost_usd, {gpu_types:Array(String)},
                                  {gpu_prices:Array(Float64)}, {overhead:Float64}, {platform_fee:Float64}) AS cost_usd
        FROM sentinel.report_jobs
        WHERE requested_at >= {start:DateTime64(3)} AND requested_at < {end:DateTime64(3)} AND guard_related
    ),
    r AS (
        SELECT
            request_id, model_id, niche,  -- every attempt of a request has the request's model and niche
            count()                                                         AS n_attempts,
            countIf(delivered)                                              AS n_delivered,
            countIf(attempt = 1 AND guard_passed IS NOT NULL)               AS first_judged,
            countIf(attempt = 1 AND ifNull(guard_passed, false))            AS first_passed,
            countIf(guard_errored)                                          AS unguarded,
            sum(cost_usd)                                                   AS request_cost_usd,
            maxIf(latency_ms, delivered) - anyIf(latency_ms - ifNull(guard_ms, 0.), attempt = 1) AS added_ms
        FROM a
        GROUP BY request_id, model_id, niche
        HAVING countIf(guard_passed IS NOT NULL OR guard_errored) > 0
    )
SELECT
    r.model_id                                                 AS model,
    if(grouping(r.niche) = 1, '*', r.niche)                    AS niche,
    count()                                                    AS requests,
    sum(n_attempts)                                            AS attempts,
    sum(n_delivered)                                           AS delivered,
    count() - sum(n_delivered)                                 AS failed_requests,
    sum(unguarded)                                             AS unguarded,
    sum(first_passed) / nullIf(sum(first_judged), 0)           AS first_attempt_pass_rate,
    sum(n_attempts) / nullIf(sum(n_delivered), 0)              AS attempts_per_delivered,
    sum(request_cost_usd) / nullIf(sum(n_delivered), 0)        AS cost_per_delivered_usd,
    quantileExactInclusiveIf(0.95)(added_ms, n_delivered > 0)  AS p95_added_latency_ms
FROM r
GROUP BY GROUPING SETS ((r.model_id), (r.model_id, r.niche))
ORDER BY model, niche = '*' DESC, niche
