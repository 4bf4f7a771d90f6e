-- How many of the report rollup tables (sql/migrations/0012) exist: 8 = the benchmark table can
-- be read from them (a store not migrated since 0012 reads the event log, benchmark.sql).
SELECT count() AS n
FROM system.tables
WHERE database = 'sentinel'
  AND name IN ('report_jobs_hourly', 'report_scores_hourly', 'report_jobs', 'report_scores',
               'report_latency_monthly', 'report_discarded', 'report_job_keys', 'report_score_keys')
