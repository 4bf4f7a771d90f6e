-- FID/CMMD inputs.
--
-- feature_moments: the generated side of FID as mergeable sufficient statistics
-- (n, Σx, Σxxᵀ flattened row-major) per scorer version x model x niche x event-time bucket x
-- source partition of jobs.completed. The score agent owns each row: it applies every source
-- offset at most once (last_offset) and writes the whole state back, so a redelivered batch
-- rewrites the same state and ReplacingMergeTree(last_offset) keeps the newest. A window's
-- moments are sum/sumForEach over its buckets (sql/reports/feature_moments.sql).
CREATE TABLE IF NOT EXISTS sentinel.feature_moments
(
    scorer_version    LowCardinality(String),
    model_id          LowCardinality(String),
    niche             LowCardinality(String),
    bucket            DateTime('UTC'),
    source_partition  UInt32,
    last_offset       UInt64,
    n                 UInt64,
    sum               Array(Float64),
    sum_outer         Array(Float64),
    updated_at        DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(last_offset)
ORDER BY (scorer_version, niche, model_id, bucket, source_partition)
SETTINGS non_replicated_deduplication_window = 1000;

-- reference_sets: per niche and feature extractor, the statistics of a set of real images
-- (`sentinel reference build NICHE DIR`): moments for FID, the embeddings themselves for CMMD,
-- and the FID normalization anchors measured on it. A rebuild replaces the row (built_at).
CREATE TABLE IF NOT EXISTS sentinel.reference_sets
(
    niche       LowCardinality(String),
    extractor   LowCardinality(String),
    built_at    DateTime64(3, 'UTC'),
    source      String,
    n           UInt64,
    sum         Array(Float64),
    sum_outer   Array(Float64),
    embeddings  Array(Array(Float32)),
    fid_best    Float64,
    fid_worst   Float64
)
ENGINE = ReplacingMergeTree(built_at)
ORDER BY (extractor, niche);
