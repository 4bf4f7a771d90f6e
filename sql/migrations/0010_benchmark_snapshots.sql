-- Benchmark snapshots: the report's point estimates per model (niche '*') and per model x niche
-- for one window, taken on a schedule by the worker and on demand (`sentinel report --snapshot`).
-- Idempotent per window: ReplacingMergeTree keyed by the window and the row, so taking the same
-- window again replaces its rows (the newest taken_at wins; read with FINAL), never adds any.
-- The composite-over-time chart of the HTML report and the Grafana trend panels read this table.
CREATE TABLE IF NOT EXISTS sentinel.benchmark_snapshots
(
    window_start        DateTime64(3, 'UTC'),
    window_end          DateTime64(3, 'UTC'),
    model               LowCardinality(String),
    niche               LowCardinality(String),
    scorer_version      String,
    jobs                UInt64,
    composite           Nullable(Float64),
    fid                 Nullable(Float64),
    fid_score           Nullable(Float64),
    cmmd                Nullable(Float64),
    clip                Nullable(Float64),
    human               Nullable(Float64),
    cost_per_image_usd  Nullable(Float64),
    p50_latency_ms      Nullable(Float64),
    p95_latency_ms      Nullable(Float64),
    taken_at            DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(taken_at)
ORDER BY (window_start, window_end, model, niche);
