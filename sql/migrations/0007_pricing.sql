-- The pricing in force, written by each worker at start from its pricing file, so that SQL
-- clients without the file (Grafana) can price jobs the way the report does:
-- self-hosted: gpu_seconds x usd_per_hour / 3600 x (1 + orchestration_overhead) + platform fee;
-- API: api_cost_usd + platform fee (the row with gpu_type = '' carries overhead and fee only).
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
