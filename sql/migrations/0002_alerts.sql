-- Quality-drift alerts: one row per incident state change (firing, resolved).
CREATE TABLE IF NOT EXISTS sentinel.alerts
(
    alert_id   String,
    model_id   LowCardinality(String),
    niche      LowCardinality(String),
    metric     LowCardinality(String),
    window     String,
    baseline   Float64,
    current    Float64,
    samples    UInt64,
    state      LowCardinality(String),
    detector   String,
    at         DateTime64(3, 'UTC'),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (alert_id, state)
SETTINGS non_replicated_deduplication_window = 1000;
