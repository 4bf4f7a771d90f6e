-- guard_rubrics.sql over sentinel.report_jobs (sql/migrations/0012), no FINAL needed.
-- The guard rubric and scorer versions behind the verdicts in a window, with how many attempts each judged.
SELECT guard_rubric_version AS rubric_version, guard_scorer_version AS scorer_version, count() AS attempts
FROM sentinel.report_jobs
WHERE requested_at >= {start:DateTime64(3)} AND requested_at < {end:DateTime64(3)}
  AND guard_passed IS NOT NULL
GROUP BY rubric_version, scorer_version
ORDER BY rubric_version, scorer_version
