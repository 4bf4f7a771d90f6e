-- The embeddings one model x niche's per-bucket moments (fid_drift_buckets.sql) add: the tail
-- rows no stored state holds (migration 0014), per bucket.
SELECT toUnixTimestamp(bucket) AS bucket_start, embedding
FROM sentinel.feature_moment_tail_unheld
WHERE scorer_version = {scorer_version:String}
  AND model_id = {model:String} AND niche = {niche:String}
  AND bucket >= toDateTime({start:UInt32}, 'UTC') AND bucket < toDateTime({end:UInt32}, 'UTC')
