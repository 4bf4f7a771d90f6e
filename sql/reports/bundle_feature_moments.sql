-- Bundle export: the FID moment states feature_moments.sql merges for a window (one scorer
-- version, buckets starting in [start, end)), every stored column, one row per state (FINAL).
SELECT * REPLACE (toDateTime64(bucket, 3, 'UTC') AS bucket)  -- a timestamp in Parquet, not epoch seconds
FROM sentinel.feature_moments FINAL
WHERE scorer_version = {scorer_version:String}
  AND bucket >= {start:DateTime64(3)} AND bucket < {end:DateTime64(3)}
ORDER BY scorer_version, niche, model_id, bucket, source_partition
