-- Bundle export (reports/bundle.py): every stored column of the jobs a report over [start, end)
-- reads (benchmark.sql, bootstrap_jobs.sql, latency_cdf.sql, ...: requested_at in the window),
-- one row per job (FINAL). `sentinel bundle verify` loads these rows into a fresh store.
SELECT *
FROM sentinel.jobs FINAL
WHERE requested_at >= {start:DateTime64(3)} AND requested_at < {end:DateTime64(3)}
ORDER BY job_id
