-- The tail rows a worker folds into the states it resumes from (warehouse/moments.py): the
-- images of the keys' buckets and partitions that their newest stored state does not hold.
SELECT model_id, niche, toUnixTimestamp(bucket) AS bucket, source_partition, source_offset, embedding
FROM sentinel.feature_moment_tail_unheld
WHERE scorer_version = {scorer_version:String}
  AND source_partition IN {partitions:Array(UInt32)}
  AND toUnixTimestamp(bucket) IN {buckets:Array(UInt32)}
