-- feature_moment_tail: each scored image's embedding, keyed like its FID moment state plus its
-- source offset. A state (feature_moments) is D + D(D+1)/2 floats whatever its count, 1 MiB for
-- ViT-B/32: rewriting it for every batch that touches its key cost ~1 MiB of insert and merges
-- per event when keys (model x niche x hour x partition) see an event or two per batch. The worker
-- now writes a batch's embeddings here (4 KiB each) and rewrites a key's state only every
-- `moments_compact_events` images (warehouse/moments.py). A key's moments are its newest state
-- plus its tail rows the state does not hold (offset >= complete_below and not in
-- applied_offsets): every reader folds both (sql/reports/*moment_tail*.sql). Rows are never
-- deleted; the state's offsets say which ones it already counts.
-- ReplacingMergeTree: a re-read record writes the same row again (same key and offset).
CREATE TABLE IF NOT EXISTS sentinel.feature_moment_tail
(
    scorer_version    LowCardinality(String),
    model_id          LowCardinality(String),
    niche             LowCardinality(String),
    bucket            DateTime('UTC'),
    source_partition  UInt32,
    source_offset     UInt64,
    embedding         Array(Float64) CODEC(NONE),
    written_at        DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (scorer_version, niche, model_id, bucket, source_partition, source_offset)
SETTINGS non_replicated_deduplication_window = 1000;

-- The tail rows their key's newest state does not hold: what every reader adds to the states.
-- A key without a stored state joins the defaults (complete_below 0, no offsets): all its rows.
-- Each reader queries this after its states query and checks that no state changed in between
-- (sql/reports/moment_marks.sql, warehouse/moment_reads.py consistent_read).
CREATE VIEW IF NOT EXISTS sentinel.feature_moment_tail_unheld AS
SELECT t.scorer_version AS scorer_version, t.model_id AS model_id, t.niche AS niche, t.bucket AS bucket,
       t.source_partition AS source_partition, t.source_offset AS source_offset, t.embedding AS embedding,
       t.written_at AS written_at
FROM
(
    SELECT * FROM sentinel.feature_moment_tail FINAL
) AS t
LEFT JOIN
(
    SELECT scorer_version, model_id, niche, bucket, source_partition, complete_below, applied_offsets
    FROM sentinel.feature_moments FINAL
) AS s ON s.scorer_version = t.scorer_version AND s.model_id = t.model_id AND s.niche = t.niche
      AND s.bucket = t.bucket AND s.source_partition = t.source_partition
WHERE t.source_offset >= s.complete_below AND NOT has(s.applied_offsets, t.source_offset)
SETTINGS join_use_nulls = 0;  -- the defaults above, whatever the session says
