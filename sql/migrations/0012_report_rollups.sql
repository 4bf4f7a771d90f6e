-- Pre-aggregated inputs of the benchmark table (sql/reports/benchmark_rollup.sql), so that a quarter of
-- 10M jobs reports in well under a second (bench/report_scale.py) with the same numbers as the
-- query over the event log (sql/reports/benchmark.sql, still used when these cannot answer):
--
--   report_jobs_hourly    per job-hour x model x niche x version x provider x GPU type: attempts,
--                         delivered images, the sums of GPU-seconds and API prices. The cost
--                         formula (sentinel_job_cost_usd) is linear in those, so it prices the
--                         sums at query time: platform fee x attempts + price x sum(GPU-s) + ...
--   report_scores_hourly  per job-hour x model x niche x scorer version: scores and their CLIP
--                         sum, placed by the job's requested_at (the score event carries it;
--                         placed = false when it did not: the report then reads the event log)
--   report_jobs           one narrow row per job (attempt), ordered by requested_at, far cheaper
--                         to scan than sentinel.jobs FINAL (the latency breakdown's exact
--                         quantiles, cost breakdown, guard section, bootstrap sample); the partial
--                         hours at a window's edges are read from it by range (sentinel.jobs is
--                         ordered by job_id)
--   report_scores         one narrow row per score placed at its job's requested_at, for the
--                         edges' CLIP (same range reads)
--   report_discarded      discarded guard attempts (delivered = false), few: their scores are in
--                         the score cells and are taken back out (the report counts delivered images)
--   report_latency_monthly delivered latencies as (value, count) per model x niche x month: a
--                         quarter of 10M jobs is ~0.4M rows (latencies are whole milliseconds),
--                         and sentinel_hist_quantile (sql/functions.sql) takes quantileExactInclusive's
--                         exact quantiles from it; partial months at a window's edges come from
--                         report_jobs
--
-- Duplicates: a retried insert block (same insert_deduplication_token) is dropped by every
-- target too (each has its own non_replicated_deduplication_window; tested in
-- tests/sql/test_report_rollups.py). A job or score stored again in a new batch (a re-delivered
-- first copy after a crash: sentinel.jobs FINAL collapses it) reaches them twice; the report
-- finds that with report_job_keys / report_score_keys (report_rollup_duplicates.sql) and then
-- reads the event log, as it does when these cannot answer (reports/rollups.py).
-- Hour-aligned windows read only the hourly cells (and the latencies); the
-- partial hours at the edges of any other window are read from report_jobs / report_scores.
ALTER TABLE sentinel.scores ADD COLUMN IF NOT EXISTS requested_at Nullable(DateTime64(3, 'UTC'));

CREATE TABLE IF NOT EXISTS sentinel.report_jobs_hourly
(
    hour            DateTime('UTC'),
    model_id        LowCardinality(String),
    niche           LowCardinality(String),
    model_version   LowCardinality(String),
    provider        LowCardinality(String),
    gpu_type        LowCardinality(String),
    attempts        UInt64,
    delivered       UInt64,
    gpu_seconds     Float64,
    api_cost_usd    Float64  -- sum of sentinel_api_price_usd: NaN when an API job had no price
)
ENGINE = SummingMergeTree
ORDER BY (hour, model_id, niche, model_version, provider, gpu_type)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS sentinel.report_jobs_hourly_mv TO sentinel.report_jobs_hourly AS
SELECT
    toStartOfHour(requested_at) AS hour, model_id, niche, model_version, provider, gpu_type,
    count() AS attempts, countIf(delivered) AS delivered, sum(gpu_seconds) AS gpu_seconds,
    sum(sentinel_api_price_usd(provider, api_cost_usd)) AS api_cost_usd
FROM sentinel.jobs
GROUP BY hour, model_id, niche, model_version, provider, gpu_type;

CREATE TABLE IF NOT EXISTS sentinel.report_scores_hourly
(
    hour            DateTime('UTC'),
    placed          Bool,
    model_id        LowCardinality(String),
    niche           LowCardinality(String),
    scorer_version  LowCardinality(String),
    scores          UInt64,
    clip_sum        Float64
)
ENGINE = SummingMergeTree
ORDER BY (placed, hour, model_id, niche, scorer_version)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS sentinel.report_scores_hourly_mv TO sentinel.report_scores_hourly AS
SELECT
    toStartOfHour(ifNull(requested_at, toDateTime64(0, 3, 'UTC'))) AS hour, requested_at IS NOT NULL AS placed,
    model_id, niche, scorer_version, count() AS scores, sum(clip_prompt_score) AS clip_sum
FROM sentinel.scores
GROUP BY hour, placed, model_id, niche, scorer_version;

CREATE TABLE IF NOT EXISTS sentinel.report_jobs
(
    requested_at    DateTime64(3, 'UTC'),
    job_id          String,
    guard_request_id String,  -- request_id of guard_related rows ('' otherwise: the job is its own request)
    attempt         UInt16,
    model_id        LowCardinality(String),
    niche           LowCardinality(String),
    model_version   LowCardinality(String),
    provider        LowCardinality(String),
    gpu_type        LowCardinality(String),
    gpu_seconds     Float64,
    api_cost_usd    Nullable(Float64),
    delivered       Bool,
    latency_ms      Float64,
    cold_start      Bool,
    cold_start_ms   Float64,
    inference_ms    Nullable(Float64),
    encode_ms       Nullable(Float64),
    queue_ms        Int64,  -- requested -> started
    delivery_ms     Int64,  -- completed -> delivered
    guard_passed    Nullable(Bool),
    guard_errored   Bool,
    guard_ms        Nullable(Float64),
    guard_failed_checks Array(LowCardinality(String)),
    guard_rubric_version LowCardinality(String),
    guard_scorer_version LowCardinality(String),
    h               UInt64,  -- cityHash64(job_id): the bootstrap's sample order (bootstrap_jobs.sql)
    -- an attempt of guard mode: a verdict or a guard error, a retry or a discarded attempt (the
    -- guard section reads only these rows; an unguarded job is attempt 1 of its own request)
    guard_related   Bool
)
ENGINE = MergeTree
ORDER BY (requested_at, job_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS sentinel.report_jobs_mv TO sentinel.report_jobs AS
SELECT requested_at, job_id, if(guard_related, request_id, '') AS guard_request_id, attempt, model_id, niche, model_version, provider, gpu_type, gpu_seconds, api_cost_usd,
       delivered, latency_ms, cold_start, cold_start_ms, inference_ms, encode_ms,
       dateDiff('millisecond', requested_at, started_at) AS queue_ms, dateDiff('millisecond', completed_at, delivered_at) AS delivery_ms,
       guard_passed, guard_error IS NOT NULL AS guard_errored, guard_ms, guard_failed_checks, guard_rubric_version,
       guard_scorer_version, cityHash64(job_id) AS h,
       guard_passed IS NOT NULL OR guard_error IS NOT NULL OR request_id != job_id OR NOT delivered OR attempt != 1 AS guard_related
FROM sentinel.jobs;

CREATE TABLE IF NOT EXISTS sentinel.report_scores
(
    model_id        LowCardinality(String),
    requested_at    DateTime64(3, 'UTC'),
    job_id          String,
    scorer_version  LowCardinality(String),
    scored_at       DateTime64(3, 'UTC'),
    clip_prompt_score Float64,
    h               UInt64  -- cityHash64(job_id), to find a sample's scores without reading job ids
)
ENGINE = MergeTree
ORDER BY (model_id, requested_at, job_id, scorer_version)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS sentinel.report_scores_mv TO sentinel.report_scores AS
SELECT model_id, assumeNotNull(requested_at) AS requested_at, job_id, scorer_version, scored_at, clip_prompt_score, cityHash64(job_id) AS h
FROM sentinel.scores
WHERE requested_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS sentinel.report_discarded
(
    requested_at    DateTime64(3, 'UTC'),
    job_id          String,
    model_id        LowCardinality(String),
    niche           LowCardinality(String),
    h               UInt64
)
ENGINE = MergeTree
ORDER BY (requested_at, job_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS sentinel.report_discarded_mv TO sentinel.report_discarded AS
SELECT requested_at, job_id, model_id, niche, cityHash64(job_id) AS h FROM sentinel.jobs WHERE NOT delivered;

-- The keys of report_jobs / report_scores, deduplicated on merge and read with FINAL: a job or
-- score stored again in a new batch (a re-delivered first copy after a crash; sentinel.jobs FINAL
-- collapses it) is counted twice by the rollups, and report_rollup_duplicates.sql finds it by
-- comparing row counts with these (then the report reads the event log).
CREATE TABLE IF NOT EXISTS sentinel.report_job_keys
(
    requested_at    DateTime64(3, 'UTC'),
    h               UInt64
)
ENGINE = ReplacingMergeTree
ORDER BY (requested_at, h)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS sentinel.report_job_keys_mv TO sentinel.report_job_keys AS
SELECT requested_at, cityHash64(job_id) AS h FROM sentinel.jobs;

CREATE TABLE IF NOT EXISTS sentinel.report_score_keys
(
    requested_at    DateTime64(3, 'UTC'),
    h               UInt64,
    scorer_version  LowCardinality(String)
)
ENGINE = ReplacingMergeTree
ORDER BY (requested_at, h, scorer_version)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS sentinel.report_score_keys_mv TO sentinel.report_score_keys AS
SELECT assumeNotNull(requested_at) AS requested_at, cityHash64(job_id) AS h, scorer_version
FROM sentinel.scores
WHERE requested_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS sentinel.report_latency_monthly
(
    model_id        LowCardinality(String),
    niche           LowCardinality(String),
    month           DateTime('UTC'),
    latency_ms      Float64,
    n               UInt64
)
ENGINE = SummingMergeTree
ORDER BY (model_id, niche, month, latency_ms)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS sentinel.report_latency_monthly_mv TO sentinel.report_latency_monthly AS
SELECT model_id, niche, toDateTime(toStartOfMonth(requested_at), 'UTC') AS month, latency_ms, count() AS n
FROM sentinel.jobs
WHERE delivered
GROUP BY model_id, niche, month, latency_ms;

-- Backfill what was stored before the views existed (migrations run before the worker consumes),
-- deduplicated as the report reads it (FINAL). Stored scores lack requested_at: they take their
-- job's (a score without a stored job is left out, as the report's join leaves it out).
INSERT INTO sentinel.report_jobs_hourly
SELECT
    toStartOfHour(requested_at) AS hour, model_id, niche, model_version, provider, gpu_type,
    count(), countIf(delivered), sum(gpu_seconds), sum(sentinel_api_price_usd(provider, api_cost_usd))
FROM sentinel.jobs FINAL
GROUP BY hour, model_id, niche, model_version, provider, gpu_type;

INSERT INTO sentinel.report_scores_hourly
SELECT toStartOfHour(j.requested_at) AS hour, true, s.model_id, s.niche, s.scorer_version, count(), sum(s.clip_prompt_score)
FROM sentinel.scores AS s FINAL
INNER JOIN (SELECT job_id, requested_at FROM sentinel.jobs FINAL) AS j ON j.job_id = s.job_id
GROUP BY hour, s.model_id, s.niche, s.scorer_version;

INSERT INTO sentinel.report_jobs
SELECT requested_at, job_id, if(guard_related, request_id, '') AS guard_request_id, attempt, model_id, niche, model_version, provider, gpu_type, gpu_seconds, api_cost_usd,
       delivered, latency_ms, cold_start, cold_start_ms, inference_ms, encode_ms,
       dateDiff('millisecond', requested_at, started_at) AS queue_ms, dateDiff('millisecond', completed_at, delivered_at) AS delivery_ms,
       guard_passed, guard_error IS NOT NULL AS guard_errored, guard_ms, guard_failed_checks, guard_rubric_version,
       guard_scorer_version, cityHash64(job_id) AS h,
       guard_passed IS NOT NULL OR guard_error IS NOT NULL OR request_id != job_id OR NOT delivered OR attempt != 1 AS guard_related
FROM sentinel.jobs FINAL;

INSERT INTO sentinel.report_scores
SELECT s.model_id, j.requested_at, s.job_id, s.scorer_version, s.scored_at, s.clip_prompt_score, cityHash64(s.job_id)
FROM sentinel.scores AS s FINAL
INNER JOIN (SELECT job_id, requested_at FROM sentinel.jobs FINAL) AS j ON j.job_id = s.job_id;

INSERT INTO sentinel.report_latency_monthly
SELECT model_id, niche, toDateTime(toStartOfMonth(requested_at), 'UTC') AS month, latency_ms, count()
FROM sentinel.jobs FINAL
WHERE delivered
GROUP BY model_id, niche, month, latency_ms;

INSERT INTO sentinel.report_discarded
SELECT requested_at, job_id, model_id, niche, cityHash64(job_id) FROM sentinel.jobs FINAL WHERE NOT delivered;

INSERT INTO sentinel.report_job_keys SELECT requested_at, h FROM sentinel.report_jobs;

INSERT INTO sentinel.report_score_keys SELECT requested_at, h, scorer_version FROM sentinel.report_scores;
