-- A fingerprint of the stored FID moment states of a scorer version in a range: every state row
-- (FINAL: the newest per key) hashed with its version and offsets, XORed. A reader of states and
-- tail rows (two queries, warehouse/moment_reads.py) reads it before and after them, with a filter
-- covering its states query's: a state rewritten in between (a compaction, a rescore, a late write
-- of a partition's old owner) changes it, and the reader reads again. Bucket bounds come in both
-- forms the states queries use: DateTime64 text (a report window) and epoch seconds (FID drift);
-- the model, niche, partition and bucket lists are optional ('' and [] match all).
SELECT groupBitXor(cityHash64(model_id, niche, bucket, source_partition, last_offset, n, complete_below,
                              applied_offsets)) AS mark, count() AS states
FROM sentinel.feature_moments FINAL
WHERE scorer_version = {scorer_version:String}
  AND bucket >= {start:DateTime64(3)} AND bucket < {end:DateTime64(3)}
  AND toUnixTimestamp(bucket) >= {from_s:UInt32} AND toUnixTimestamp(bucket) < {to_s:UInt32}
  AND ({model:String} = '' OR model_id = {model:String})
  AND ({niche:String} = '' OR niche = {niche:String})
  AND (empty({partitions:Array(UInt32)}) OR source_partition IN {partitions:Array(UInt32)})
  AND (empty({buckets:Array(UInt32)}) OR toUnixTimestamp(bucket) IN {buckets:Array(UInt32)})
