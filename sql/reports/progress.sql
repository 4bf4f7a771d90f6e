-- How much of the traffic is stored and scored (for progress bars and health checks).
SELECT
    (SELECT count() FROM sentinel.jobs FINAL)                    AS jobs,
    (SELECT uniqExact(job_id) FROM sentinel.scores)              AS scored,
    (SELECT count() FROM sentinel.ratings FINAL)                 AS ratings
