-- A deterministic sample of stored image embeddings per model x niche in a window, for CMMD:
-- jobs ordered by a hash of their id, the first {per_group} of each group.
SELECT j.model_id AS model, j.niche AS niche, s.embedding AS embedding
FROM
(
    SELECT job_id, model_id, niche
    FROM sentinel.jobs FINAL
    WHERE requested_at >= {start:DateTime64(3)} AND requested_at < {end:DateTime64(3)}
      AND delivered  -- guard mode: what customers received, as the FID moments
) AS j
INNER JOIN
(
    SELECT job_id, embedding
    FROM sentinel.scores FINAL
    WHERE scorer_version = {scorer_version:String}
) AS s ON s.job_id = j.job_id
ORDER BY model, niche, cityHash64(j.job_id)
LIMIT {per_group:UInt32} BY model, niche
