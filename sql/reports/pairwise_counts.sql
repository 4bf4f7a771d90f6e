-- Blind pairwise human ratings per ordered model pair (model shown as a, model shown as b),
-- for ratings whose two jobs were both requested in [start, end). Each rating_id counts once
-- (FINAL); ratings of two jobs of the same model, or naming a job not stored, are not counted.
-- The row with is_total = 1 sums every counted rating: ratings, distinct raters, and raters
-- whose id does not start with 'sim-' (simulated raters).
WITH
    r AS (SELECT rating_id, job_a, job_b, winner, rater FROM sentinel.ratings FINAL),
    j AS (
        SELECT job_id, model_id
        FROM sentinel.jobs FINAL
        WHERE requested_at >= {start:DateTime64(3)} AND requested_at < {end:DateTime64(3)}
          -- only rated jobs (primary-key lookups): a window of 10M jobs is not read for a few ratings
          AND job_id IN (SELECT job_a FROM r UNION ALL SELECT job_b FROM r)
    ),
    rated AS (
        SELECT ja.model_id AS model_a, jb.model_id AS model_b, r.winner AS winner, r.rater AS rater
        FROM r
        INNER JOIN j AS ja ON ja.job_id = r.job_a
        INNER JOIN j AS jb ON jb.job_id = r.job_b
        WHERE ja.model_id != jb.model_id
    )
SELECT
    grouping(model_a, model_b) != 0          AS is_total,
    model_a,
    model_b,
    countIf(winner = 'a')                    AS a_wins,
    countIf(winner = 'b')                    AS b_wins,
    countIf(winner = 'tie')                  AS ties,
    count()                                  AS ratings,
    uniqExact(rater)                         AS raters,
    uniqExactIf(rater, NOT startsWith(rater, 'sim-')) AS human_raters
FROM rated
GROUP BY GROUPING SETS ((model_a, model_b), ())
ORDER BY is_total, model_a, model_b
