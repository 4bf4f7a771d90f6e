-- Guard mode (inference/guarded.py): every attempt of a customer request is its own job row.
-- request_id groups the attempts (rows stored before guard mode: their own job_id), attempt
-- numbers them (1 before guard mode), delivered says whether the image reached the customer
-- (true before guard mode). The verdict columns are NULL / empty on unguarded jobs; a guarded
-- job delivered without a verdict (guard unavailable) has guard_error set.
-- The report (sql/reports/guard*.sql) and the per-image benchmark read them: cost per
-- delivered image = the cost of every attempt / delivered images.
ALTER TABLE sentinel.jobs ADD COLUMN IF NOT EXISTS request_id String DEFAULT job_id AFTER content_hash;
ALTER TABLE sentinel.jobs ADD COLUMN IF NOT EXISTS attempt UInt16 DEFAULT 1 AFTER request_id;
ALTER TABLE sentinel.jobs ADD COLUMN IF NOT EXISTS delivered Bool DEFAULT true AFTER attempt;
ALTER TABLE sentinel.jobs ADD COLUMN IF NOT EXISTS guard_passed Nullable(Bool) AFTER delivered;
ALTER TABLE sentinel.jobs ADD COLUMN IF NOT EXISTS guard_score Nullable(Float64) AFTER guard_passed;
ALTER TABLE sentinel.jobs ADD COLUMN IF NOT EXISTS guard_failed_checks Array(LowCardinality(String)) DEFAULT [] AFTER guard_score;
ALTER TABLE sentinel.jobs ADD COLUMN IF NOT EXISTS guard_rubric_version LowCardinality(String) DEFAULT '' AFTER guard_failed_checks;
ALTER TABLE sentinel.jobs ADD COLUMN IF NOT EXISTS guard_scorer_version LowCardinality(String) DEFAULT '' AFTER guard_rubric_version;
ALTER TABLE sentinel.jobs ADD COLUMN IF NOT EXISTS guard_ms Nullable(Float64) AFTER guard_scorer_version;
ALTER TABLE sentinel.jobs ADD COLUMN IF NOT EXISTS guard_error Nullable(String) AFTER guard_ms;

-- One row per check of each verdict: its value, threshold, result and reason (the event's
-- guard_checks), for "failures by check" with the numbers behind them.
CREATE TABLE IF NOT EXISTS sentinel.guard_checks
(
    job_id          String,
    request_id      String,
    attempt         UInt16,
    model_id        LowCardinality(String),
    niche           LowCardinality(String),
    requested_at    DateTime64(3, 'UTC'),
    rubric_version  LowCardinality(String),
    check_name      LowCardinality(String),
    value           Nullable(Float64),
    threshold       Nullable(Float64),
    passed          Bool,
    reason          String,
    ingested_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(requested_at)
ORDER BY (job_id, check_name)
SETTINGS non_replicated_deduplication_window = 1000;
