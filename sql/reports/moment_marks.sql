-- How many images the stored FID moment states of a scorer version hold in buckets [start, end)
-- (optionally one model, niche, or set of source partitions; '' and [] match all). A reader of
-- states and tail rows (two queries, warehouse/moments.py) reads this before and after them: a
-- state rewritten in between (its n grows) would make the tail rows it now holds disappear from
-- the second query while the first counted the older state, so the reader reads again.
SELECT toUInt64(sum(n)) AS n, count() AS states
FROM sentinel.feature_moments FINAL
WHERE scorer_version = {scorer_version:String}
  AND bucket >= {start:DateTime64(3)} AND bucket < {end:DateTime64(3)}
  AND ({model:String} = '' OR model_id = {model:String})
  AND ({niche:String} = '' OR niche = {niche:String})
  AND (empty({partitions:Array(UInt32)}) OR source_partition IN {partitions:Array(UInt32)})
