-- Bundle export: the reference set of each niche the report compares against (one feature
-- extractor, the current row per niche: FINAL), every stored column.
SELECT *
FROM sentinel.reference_sets FINAL
WHERE extractor = {extractor:String}
ORDER BY niche
