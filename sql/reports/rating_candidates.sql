-- Job pairs a rater can compare blind: same niche and prompt, two different models, not yet
-- rated in either order and not listed in {exclude} ('job1|job2', lower job id first).
-- model_1 < model_2. {seed} draws the sample: at most {per_group} jobs per (niche, prompt,
-- model) enter the self-join (it stays small when demo traffic repeats prompts), and at most
-- {per_model_pair} candidates per model pair come back. A new seed, a new sample.
WITH
    rated AS (SELECT least(job_a, job_b) AS lo, greatest(job_a, job_b) AS hi FROM sentinel.ratings FINAL),
    j AS (
        SELECT job_id, model_id, niche, prompt
        FROM sentinel.jobs FINAL
        WHERE delivered  -- guard mode: raters compare delivered images, never discarded attempts
        ORDER BY cityHash64(job_id, {seed:UInt64})
        LIMIT {per_group:UInt32} BY niche, prompt, model_id
    )
SELECT
    a.job_id   AS job_1,
    b.job_id   AS job_2,
    a.model_id AS model_1,
    b.model_id AS model_2,
    a.niche    AS niche,
    a.prompt   AS prompt
FROM j AS a
INNER JOIN j AS b ON a.niche = b.niche AND a.prompt = b.prompt
WHERE a.model_id < b.model_id
  AND (least(a.job_id, b.job_id), greatest(a.job_id, b.job_id)) NOT IN (SELECT lo, hi FROM rated)
  AND NOT has({exclude:Array(String)}, concat(least(a.job_id, b.job_id), '|', greatest(a.job_id, b.job_id)))
ORDER BY cityHash64(a.job_id, b.job_id, {seed:UInt64})
LIMIT {per_model_pair:UInt32} BY model_1, model_2
