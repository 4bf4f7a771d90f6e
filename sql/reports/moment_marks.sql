-- How many images the stored FID moment states of a scorer version hold in buckets [start, end)
-- (optionally one model, niche, set of source partitions or of bucket starts; '' and [] match
-- all). A reader of states and tail rows (two queries, warehouse/moment_reads.py) reads this
-- after both, with its states query's filter: a state rewritten in between (its n grows) would
-- hide the tail rows it now holds from the second query while the first counted the older
-- state, so a count above the first query's makes the reader read again.
SELECT toUInt64(sum(n)) AS n
FROM sentinel.feature_moments FINAL
WHERE scorer_version = {scorer_version:String}
  AND bucket >= {start:DateTime64(3)} AND bucket < {end:DateTime64(3)}
  AND ({model:String} = '' OR model_id = {model:String})
  AND ({niche:String} = '' OR niche = {niche:String})
  AND (empty({partitions:Array(UInt32)}) OR source_partition IN {partitions:Array(UInt32)})
  AND (empty({buckets:Array(UInt32)}) OR toUnixTimestamp(bucket) IN {buckets:Array(UInt32)})
