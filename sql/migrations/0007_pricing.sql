-- The pricing in force, written by each worker at start from its pricing file, so that SQL
-- clients without the file (Grafana) can price jobs the way the report does, with the
-- sentinel_job_cost_usd function of sql/functions.sql (the row with gpu_type = '' carries
-- overhead and fee only).
-- Reports keep pricing at query time from the file they are given; this table is for dashboards.
CREATE TABLE IF NOT EXISTS sentinel.pricing
(
    gpu_type                    LowCardinality(String),
    usd_per_hour                Float64,
    orchestration_overhead      Float64,
    platform_fee_usd_per_image  Float64,
    updated_at                  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY gpu_type;
