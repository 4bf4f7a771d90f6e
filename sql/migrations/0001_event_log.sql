-- The event log: one row per completed job, one row per (job, scorer version) score.
-- ReplacingMergeTree + FINAL makes re-delivered events (at-least-once) collapse to one row;
-- non_replicated_deduplication_window makes a retried insert batch with the same
-- insert_deduplication_token a no-op.

CREATE TABLE IF NOT EXISTS sentinel.jobs
(
    job_id            String,
    model_id          LowCardinality(String),
    model_version     LowCardinality(String),
    provider          LowCardinality(String),
    niche             LowCardinality(String),
    prompt            String,
    seed              Nullable(Int64),
    has_reference     Bool,
    media_type        LowCardinality(String),
    requested_at      DateTime64(3, 'UTC'),
    started_at        DateTime64(3, 'UTC'),
    completed_at      DateTime64(3, 'UTC'),
    delivered_at      DateTime64(3, 'UTC'),
    latency_ms        Float64,
    cold_start        Bool,
    cold_start_ms     Float64,
    inference_ms      Nullable(Float64),
    encode_ms         Nullable(Float64),
    gpu_type          LowCardinality(String),
    gpu_seconds       Float64,
    api_cost_usd      Nullable(Float64),
    node_id           LowCardinality(String),
    image_bytes       UInt32,
    source_partition  UInt32,
    source_offset     UInt64,
    ingested_at       DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(requested_at)
ORDER BY job_id
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS sentinel.job_images
(
    job_id           String,
    media_type       LowCardinality(String),
    image            String,
    reference_image  Nullable(String)
)
ENGINE = ReplacingMergeTree
ORDER BY job_id
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS sentinel.scores
(
    job_id                String,
    scorer_version        LowCardinality(String),
    model_id              LowCardinality(String),
    niche                 LowCardinality(String),
    scored_at             DateTime64(3, 'UTC'),
    clip_prompt_score     Float64,
    clip_reference_score  Nullable(Float64),
    embedding             Array(Float32),
    flags                 Array(String),
    ingested_at           DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (job_id, scorer_version)
SETTINGS non_replicated_deduplication_window = 1000;
