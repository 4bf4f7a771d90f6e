-- GPU types in a window, so that the pricing table can be checked before a report runs.
SELECT DISTINCT gpu_type
FROM sentinel.jobs
WHERE provider != 'api' AND requested_at >= {start:DateTime64(3)} AND requested_at < {end:DateTime64(3)}
ORDER BY gpu_type
