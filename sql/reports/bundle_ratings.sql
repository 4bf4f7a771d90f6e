-- Bundle export: the ratings pairwise_counts.sql counts for [start, end): both jobs requested in
-- the window and of different models; one row per rating_id (FINAL).
WITH j AS (
    SELECT job_id, model_id
    FROM sentinel.jobs FINAL
    WHERE requested_at >= {start:DateTime64(3)} AND requested_at < {end:DateTime64(3)}
)
SELECT r.*
FROM sentinel.ratings AS r FINAL
INNER JOIN j AS ja ON ja.job_id = r.job_a
INNER JOIN j AS jb ON jb.job_id = r.job_b
WHERE ja.model_id != jb.model_id
ORDER BY r.rating_id
