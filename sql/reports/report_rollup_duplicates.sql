-- Rows stored twice in the per-job report tables (sql/migrations/0012) within the window: a job
-- or score that the worker stored again in a new batch (a re-delivered first copy after a crash
-- or a rebalance). sentinel.jobs/scores collapse such a copy when read with FINAL; the rollups
-- would count it twice, so the report then reads the event log. Rows of report_jobs/scores
-- (every copy) minus their distinct keys (report_*_keys FINAL: cheap, ordered by time). A
-- duplicate always shows; two different jobs with the same requested_at and the same 64-bit
-- hash could only report a duplicate that is not one (the event log answers: slower, not wrong).
SELECT
    (SELECT count() FROM sentinel.report_jobs
     WHERE requested_at >= {start:DateTime64(3)} AND requested_at < {end:DateTime64(3)})
  - (SELECT count() FROM sentinel.report_job_keys FINAL
     WHERE requested_at >= {start:DateTime64(3)} AND requested_at < {end:DateTime64(3)})      AS jobs,
    (SELECT count() FROM sentinel.report_scores
     WHERE requested_at >= {start:DateTime64(3)} AND requested_at < {end:DateTime64(3)})
  - (SELECT count() FROM sentinel.report_score_keys FINAL
     WHERE requested_at >= {start:DateTime64(3)} AND requested_at < {end:DateTime64(3)})      AS scores
