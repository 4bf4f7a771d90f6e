-- Blind pairwise human ratings (topic ratings.pairwise): one row per rating_id.
-- ReplacingMergeTree + FINAL collapses a rating imported or re-delivered twice to one row;
-- the insert_deduplication_token (source offsets) makes a retried insert batch a no-op.
CREATE TABLE IF NOT EXISTS sentinel.ratings
(
    rating_id         String,
    job_a             String,
    job_b             String,
    winner            LowCardinality(String),
    rater             String,
    rated_at          DateTime64(3, 'UTC'),
    source_partition  UInt32,
    source_offset     UInt64,
    ingested_at       DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY rating_id
SETTINGS non_replicated_deduplication_window = 1000;
