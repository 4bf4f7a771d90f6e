-- Quality, cost and latency per model (niche = '*') and per model x niche: the numbers of
-- benchmark.sql (same definitions, read there from the event log), read here from the
-- report rollups of sql/migrations/0012 for the window's full hours [hours_start, hours_end)
-- (latencies: full months [months_start, months_end)) and from the per-job report_jobs /
-- report_scores for the rest at its edges. reports/rollups.py uses this query only when
-- report_rollup_check.sql says the rollups answer exactly.
--   jobs, scored: delivered images (guard mode: discarded attempts are not jobs here)
--   clip: mean of each delivered job's CLIP score (scorer_version = '' : its latest score)
--   p50/p95: exact, quantileExactInclusive's numbers from the (value, count) histogram of every
--     delivered image's latency (sentinel_hist_quantile)
--   cost per image: cost of every attempt / delivered images, priced by sentinel_job_cost_usd at
--     query time; over an hour cell the formula is applied to the cell's sums (it is linear in
--     GPU-seconds, API price and the fee), equal to the per-job sum up to float rounding.
WITH
    edge AS (  -- jobs of the partial hours at the window's edges: [start, hours_start) and [hours_end, end)
        SELECT
            job_id, model_id, model_version, provider, niche, delivered,
            sentinel_job_cost_usd(provider, gpu_type, gpu_seconds, api_cost_usd, {gpu_types:Array(String)},
                                  {gpu_prices:Array(Float64)}, {overhead:Float64}, {platform_fee:Float64}) AS cost_usd
        FROM sentinel.report_jobs
        WHERE (requested_at >= {start:DateTime64(3)} AND requested_at < {hours_start:DateTime64(3)})
           OR (requested_at >= {hours_end:DateTime64(3)} AND requested_at < {end:DateTime64(3)})
    ),
    edge_scores AS (
        SELECT job_id, argMax(clip_prompt_score, scored_at) AS clip
        FROM sentinel.report_scores
        WHERE ((requested_at >= {start:DateTime64(3)} AND requested_at < {hours_start:DateTime64(3)})
               OR (requested_at >= {hours_end:DateTime64(3)} AND requested_at < {end:DateTime64(3)}))
          AND ({scorer_version:String} = '' OR scorer_version = {scorer_version:String})
        GROUP BY job_id
    ),
    discarded_scores AS (  -- latest score of each discarded attempt (delivered = false) of the full hours
        SELECT d.model_id AS model_id, d.niche AS niche, s.clip AS clip
        FROM
        (
            SELECT job_id, model_id, niche
            FROM sentinel.report_discarded
            WHERE requested_at >= {hours_start:DateTime64(3)} AND requested_at < {hours_end:DateTime64(3)}
        ) AS d
        INNER JOIN
        (
            SELECT job_id, argMax(clip_prompt_score, scored_at) AS clip
            FROM sentinel.report_scores
            WHERE requested_at >= {hours_start:DateTime64(3)} AND requested_at < {hours_end:DateTime64(3)}
              AND model_id IN (SELECT model_id FROM sentinel.report_discarded
                               WHERE requested_at >= {hours_start:DateTime64(3)} AND requested_at < {hours_end:DateTime64(3)})
              AND h IN (SELECT h FROM sentinel.report_discarded
                        WHERE requested_at >= {hours_start:DateTime64(3)} AND requested_at < {hours_end:DateTime64(3)})
              AND ({scorer_version:String} = '' OR scorer_version = {scorer_version:String})
            GROUP BY job_id
        ) AS s ON s.job_id = d.job_id
    ),
    parts AS (
        SELECT e.model_id AS p_model, e.niche AS p_niche, e.model_version AS p_version, e.provider AS p_provider,
               true AS has_job, toUInt64(e.delivered) AS p_jobs, toInt64(s.job_id != '' AND e.delivered) AS p_scored,
               if(s.job_id != '' AND e.delivered, s.clip, 0.) AS p_clip_sum, e.cost_usd AS p_cost_usd
        FROM edge AS e
        LEFT JOIN edge_scores AS s ON s.job_id = e.job_id
        UNION ALL
        SELECT model_id, niche, model_version, provider, true, sum(delivered), 0, 0.,
               sentinel_job_cost_usd(provider, gpu_type, sum(gpu_seconds), sum(api_cost_usd), {gpu_types:Array(String)},
                                     {gpu_prices:Array(Float64)}, {overhead:Float64}, {platform_fee:Float64} * sum(attempts))
        FROM sentinel.report_jobs_hourly
        WHERE hour >= {hours_start:DateTime64(3)} AND hour < {hours_end:DateTime64(3)}
        GROUP BY model_id, niche, model_version, provider, gpu_type
        UNION ALL
        SELECT model_id, niche, '', '', false, 0, toInt64(sum(scores)), sum(clip_sum), 0.
        FROM sentinel.report_scores_hourly
        WHERE placed AND hour >= {hours_start:DateTime64(3)} AND hour < {hours_end:DateTime64(3)}
          AND ({scorer_version:String} = '' OR scorer_version = {scorer_version:String})
        GROUP BY model_id, niche
        UNION ALL  -- scores of discarded attempts are in the cells above: take them back out
        SELECT model_id, niche, '', '', false, 0, -1, -clip, 0.
        FROM discarded_scores
    ),
    hist AS (  -- delivered latencies: monthly (value, count) rows for the window's whole months,
               -- one row per job from report_jobs for the rest
        SELECT model_id, niche, latency_ms, n
        FROM sentinel.report_latency_monthly
        WHERE month >= {months_start:DateTime64(3)} AND month < {months_end:DateTime64(3)}
        UNION ALL
        SELECT model_id, niche, latency_ms, toUInt64(1)
        FROM sentinel.report_jobs
        WHERE delivered
          AND ((requested_at >= {start:DateTime64(3)} AND requested_at < {months_start:DateTime64(3)})
               OR (requested_at >= {months_end:DateTime64(3)} AND requested_at < {end:DateTime64(3)}))
    ),
    lat AS (
        SELECT model_id AS l_model, if(grouping(niche) = 1, '*', niche) AS l_niche,
               arraySort(x -> x.1, groupArray((latency_ms, n))) AS pairs,
               arrayMap(x -> x.1, pairs) AS vals, arrayCumSum(arrayMap(x -> x.2, pairs)) AS cum
        FROM (SELECT model_id, niche, latency_ms, sum(n) AS n FROM hist GROUP BY model_id, niche, latency_ms)
        GROUP BY GROUPING SETS ((model_id), (model_id, niche))
    ),
    agg AS (
        SELECT
            p_model                                           AS model,
            if(grouping(p_niche) = 1, '*', p_niche)           AS niche,
            anyIf(p_version, has_job)                         AS model_version,
            anyIf(p_provider, has_job)                        AS provider,
            sum(p_jobs)                                       AS jobs,
            sum(p_scored)                                     AS scored,
            sum(p_clip_sum) / sum(p_scored)                   AS clip,
            sum(p_cost_usd) / nullIf(jobs, 0)                 AS cost_per_image_usd
        FROM parts
        GROUP BY GROUPING SETS ((p_model), (p_model, p_niche))
        HAVING countIf(has_job) > 0
    )
SELECT
    agg.model AS model, agg.niche AS niche, model_version, provider, jobs, scored, clip,
    sentinel_hist_quantile(lat.vals, lat.cum, 0.5)  AS p50_latency_ms,
    sentinel_hist_quantile(lat.vals, lat.cum, 0.95) AS p95_latency_ms,
    cost_per_image_usd
FROM agg
LEFT JOIN lat ON lat.l_model = agg.model AND lat.l_niche = agg.niche
ORDER BY model, niche = '*' DESC, niche
