-- Blind pairwise human ratings per niche and ordered model pair (model shown as a, model shown
-- as b), for the per-niche Bradley–Terry fits: ratings whose two jobs were both requested in
-- [start, end) and belong to the same niche (rating candidates always do; a rating imported
-- across two niches is left out here and still counts in pairwise_counts.sql). Each rating_id
-- counts once (FINAL); ratings of two jobs of the same model, or naming a job not stored, are
-- not counted.
WITH
    r AS (SELECT rating_id, job_a, job_b, winner FROM sentinel.ratings FINAL),
    j AS (
        SELECT job_id, model_id, niche
        FROM sentinel.jobs FINAL
        WHERE requested_at >= {start:DateTime64(3)} AND requested_at < {end:DateTime64(3)}
          -- only rated jobs (primary-key lookups): a window of 10M jobs is not read for a few ratings
          AND job_id IN (SELECT job_a FROM r UNION ALL SELECT job_b FROM r)
    )
SELECT
    ja.niche                        AS niche,
    ja.model_id                     AS model_a,
    jb.model_id                     AS model_b,
    countIf(r.winner = 'a')         AS a_wins,
    countIf(r.winner = 'b')         AS b_wins,
    countIf(r.winner = 'tie')       AS ties
FROM r
INNER JOIN j AS ja ON ja.job_id = r.job_a
INNER JOIN j AS jb ON jb.job_id = r.job_b
WHERE ja.model_id != jb.model_id AND ja.niche = jb.niche
GROUP BY niche, model_a, model_b
ORDER BY niche, model_a, model_b
