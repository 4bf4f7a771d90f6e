-- Generated-side FID moments of a window, the states' part (warehouse/moment_reads.py adds the
-- tail rows no state holds, feature_moment_tail.sql), merged from the per-bucket states:
-- n = Σn, Σx = sumForEach(sum), Σxxᵀ = sumForEach(sum_outer) + the symmetric matrix of
-- sumForEach(sum_outer_upper) (older states hold all D² values, newer the upper triangle:
-- migration 0013; warehouse/moment_reads.py adds them). Buckets are selected by their
-- start (event time, requested_at), so a window is rounded to bucket boundaries.
SELECT
    model_id                AS model,
    niche,
    sum(n)                  AS images,
    sumForEach(sum)         AS feature_sum,
    sumForEach(sum_outer)   AS feature_sum_outer,
    sumForEach(sum_outer_upper) AS feature_sum_outer_upper
FROM sentinel.feature_moments FINAL
WHERE scorer_version = {scorer_version:String}
  AND bucket >= {start:DateTime64(3)} AND bucket < {end:DateTime64(3)}
GROUP BY model_id, niche
ORDER BY model, niche
