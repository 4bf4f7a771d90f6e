-- Bundle export: the benchmark snapshot rows the report's trend reads (snapshot_trend.sql): the
-- model rows (niche '*') of windows ending within (start, end], the newest of each (FINAL).
SELECT *
FROM sentinel.benchmark_snapshots FINAL
WHERE niche = '*' AND window_end > {start:DateTime64(3)} AND window_end <= {end:DateTime64(3)}
ORDER BY model, window_start, window_end
