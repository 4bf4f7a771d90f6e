-- Rows stored twice in the per-job report tables (sql/migrations/0012) within the window: a job
-- or score that the worker stored again in a new batch (a re-delivered first copy after a crash
-- or a rebalance). sentinel.jobs/scores collapse such a copy when read with FINAL; the rollups
-- would count it twice, so the report then reads the event log. By hash: a duplicate always has
-- its first copy's hash, so it always shows; a collision of two different jobs' hashes can only
-- report a duplicate that is not one (the event log answers then: slower, never wrong).
SELECT
    (SELECT count() - uniqExact(h) FROM sentinel.report_jobs
     WHERE requested_at >= {start:DateTime64(3)} AND requested_at < {end:DateTime64(3)})      AS jobs,
    (SELECT count() - uniqExact(h, scorer_version) FROM sentinel.report_scores
     WHERE requested_at >= {start:DateTime64(3)} AND requested_at < {end:DateTime64(3)})      AS scores
