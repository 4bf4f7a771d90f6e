-- Scorer versions with stored scores, newest first: what `report --scorer-version` can name.
SELECT scorer_version, uniqExact(job_id) AS jobs, max(scored_at) AS latest
FROM sentinel.scores
GROUP BY scorer_version
ORDER BY latest DESC
