-- Bundle export: the scores of the window's jobs that the report reads: those of the requested
-- scorer version, or of every version when scorer_version = '' (benchmark.sql then takes each
-- job's latest, embedding_sample.sql the FID/CMMD version's), one row per (job, version).
SELECT *
FROM sentinel.scores FINAL
WHERE job_id IN (
        SELECT job_id FROM sentinel.jobs FINAL
        WHERE requested_at >= {start:DateTime64(3)} AND requested_at < {end:DateTime64(3)}
    )
  AND ({scorer_version:String} = '' OR scorer_version = {scorer_version:String})
ORDER BY job_id, scorer_version
