-- The composite and its components over time, one row per snapshot window and model (the
-- model rows, niche '*'), windows that end within (start, end] (the report's window): the
-- report's trend section and the HTML chart. FINAL: a window taken twice counts once (its newest rows).
SELECT
    window_start, window_end, model, niche, jobs, composite, fid, fid_score, cmmd, clip, human,
    cost_per_image_usd, p50_latency_ms, p95_latency_ms
FROM sentinel.benchmark_snapshots FINAL
WHERE niche = '*' AND window_end > {start:DateTime64(3)} AND window_end <= {end:DateTime64(3)}
ORDER BY model, window_start, window_end
