-- The current reference set of each niche for one feature extractor.
SELECT niche, extractor, built_at, source, n, sum, sum_outer, embeddings, fid_best, fid_worst
FROM sentinel.reference_sets FINAL
WHERE extractor = {extractor:String}
ORDER BY niche
