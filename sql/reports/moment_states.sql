-- The stored states a worker resumes from: one row per key, the newest (highest last_offset;
-- of equal ones the last written).
SELECT scorer_version, model_id, niche, toUnixTimestamp(bucket) AS bucket, source_partition,
       last_offset, complete_below, applied_offsets, n, sum, sum_outer, sum_outer_upper
FROM sentinel.feature_moments FINAL
WHERE scorer_version = {scorer_version:String}
  AND source_partition IN {partitions:Array(UInt32)}
  AND toUnixTimestamp(bucket) IN {buckets:Array(UInt32)}
