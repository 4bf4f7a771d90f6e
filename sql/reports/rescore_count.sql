-- How many stored jobs a rescore of [start, end) will read (for its progress bar).
SELECT count() AS jobs
FROM sentinel.jobs FINAL
WHERE requested_at >= {start:DateTime64(3)} AND requested_at < {end:DateTime64(3)}
