-- The embeddings a window's FID moments add to its merged states (feature_moments.sql): the
-- tail rows no stored state holds (migration 0014), buckets selected by their start as there.
SELECT model_id AS model, niche, embedding
FROM sentinel.feature_moment_tail_unheld
WHERE scorer_version = {scorer_version:String}
  AND bucket >= {start:DateTime64(3)} AND bucket < {end:DateTime64(3)}
