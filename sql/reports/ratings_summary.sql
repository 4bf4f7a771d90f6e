-- Stored pairwise ratings (each rating_id once) per rater: how many, the winners, the time
-- range, and how many name a job that is not stored (not counted by the report).
WITH
    r AS (SELECT rating_id, job_a, job_b, winner, rater, rated_at FROM sentinel.ratings FINAL),
    known AS (SELECT job_id FROM sentinel.jobs FINAL)
SELECT
    rater,
    count()                                   AS ratings,
    countIf(winner = 'a')                     AS a_wins,
    countIf(winner = 'b')                     AS b_wins,
    countIf(winner = 'tie')                   AS ties,
    countIf(job_a NOT IN known OR job_b NOT IN known) AS unknown_jobs,
    min(rated_at)                             AS first_rated_at,
    max(rated_at)                             AS last_rated_at
FROM r
GROUP BY rater
ORDER BY rater
