-- Bundle export: the FID moment tail rows feature_moment_tail.sql adds to the window's states
-- (one scorer version, buckets starting in [start, end)): the images no stored state holds, so
-- the verifying store, holding only the exported states, counts each of them once.
SELECT scorer_version, model_id, niche, toDateTime64(bucket, 3, 'UTC') AS bucket,  -- a timestamp in Parquet
       source_partition, source_offset, embedding, written_at
FROM sentinel.feature_moment_tail_unheld
WHERE scorer_version = {scorer_version:String}
  AND bucket >= {start:DateTime64(3)} AND bucket < {end:DateTime64(3)}
ORDER BY scorer_version, niche, model_id, bucket, source_partition, source_offset
