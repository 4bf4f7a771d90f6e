-- Per-bucket FID moments of one model x niche over closed buckets [start, end), every source
-- partition merged, the states' part (fid_drift_tail.sql has the tail rows no state holds):
-- the input of the FID drift windows (sentinel/fid_drift.py).
SELECT
    toUnixTimestamp(bucket) AS bucket_start,
    sum(n)                  AS images,
    sumForEach(sum)         AS feature_sum,
    sumForEach(sum_outer)   AS feature_sum_outer,
    sumForEach(sum_outer_upper) AS feature_sum_outer_upper
FROM sentinel.feature_moments FINAL
WHERE scorer_version = {scorer_version:String}
  AND model_id = {model:String} AND niche = {niche:String}
  AND bucket >= toDateTime({start:UInt32}, 'UTC') AND bucket < toDateTime({end:UInt32}, 'UTC')
GROUP BY bucket
ORDER BY bucket
