-- Hourly rollups for dashboards and cheap long-range queries: materialized views into
-- AggregatingMergeTree tables holding aggregate states (merge with the -Merge combinators,
-- see sql/reports/rollup_hourly.sql).
--
-- Exactness: an MV sees every block inserted into its source, and a source table's dedup does
-- not stop it (measured on chDB 26.x: a retried block reached an MV target without a window).
-- So the targets have their own non_replicated_deduplication_window: the insert token travels
-- with the block, and a retried batch is dropped there too. The worker's duplicate gate
-- (streams/gate.py) keeps a job id that is already stored from being inserted again, so each
-- job reaches the rollup once. Job counts use uniqExact(job_id), which is exact even if a row
-- did arrive twice; sums and latency digests are not. The base tables (read with FINAL)
-- remain the source of truth for the quarterly report; latency quantiles here are t-digest
-- estimates, the report's are exact.
CREATE TABLE IF NOT EXISTS sentinel.jobs_hourly
(
    hour            DateTime('UTC'),
    model_id        LowCardinality(String),
    niche           LowCardinality(String),
    provider        LowCardinality(String),
    gpu_type        LowCardinality(String),
    jobs            AggregateFunction(uniqExact, String),
    cold_starts     AggregateFunction(sum, UInt64),
    gpu_seconds     AggregateFunction(sum, Float64),
    api_cost_usd    AggregateFunction(sum, Float64),
    latency_ms      AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64)
)
ENGINE = AggregatingMergeTree
ORDER BY (hour, model_id, niche, provider, gpu_type)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS sentinel.jobs_hourly_mv TO sentinel.jobs_hourly AS
SELECT
    toStartOfHour(requested_at)                                   AS hour,
    model_id, niche, provider, gpu_type,
    uniqExactState(job_id)                                        AS jobs,
    sumState(toUInt64(cold_start))                                AS cold_starts,
    sumState(gpu_seconds)                                         AS gpu_seconds,
    sumState(ifNull(api_cost_usd, 0.))                            AS api_cost_usd,
    quantilesTDigestState(0.5, 0.95, 0.99)(latency_ms)            AS latency_ms
FROM sentinel.jobs
GROUP BY hour, model_id, niche, provider, gpu_type;

-- Backfill what was stored before the view existed (migrations run once, before the worker
-- consumes).
INSERT INTO sentinel.jobs_hourly
SELECT
    toStartOfHour(requested_at), model_id, niche, provider, gpu_type,
    uniqExactState(job_id), sumState(toUInt64(cold_start)), sumState(gpu_seconds),
    sumState(ifNull(api_cost_usd, 0.)), quantilesTDigestState(0.5, 0.95, 0.99)(latency_ms)
FROM sentinel.jobs FINAL
GROUP BY toStartOfHour(requested_at), model_id, niche, provider, gpu_type;

CREATE TABLE IF NOT EXISTS sentinel.scores_hourly
(
    hour              DateTime('UTC'),
    scorer_version    LowCardinality(String),
    model_id          LowCardinality(String),
    niche             LowCardinality(String),
    scored            AggregateFunction(uniqExact, String),
    clip_prompt_score AggregateFunction(avg, Float64)
)
ENGINE = AggregatingMergeTree
ORDER BY (hour, scorer_version, model_id, niche)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS sentinel.scores_hourly_mv TO sentinel.scores_hourly AS
SELECT
    toStartOfHour(scored_at) AS hour, scorer_version, model_id, niche,
    uniqExactState(job_id) AS scored, avgState(clip_prompt_score) AS clip_prompt_score
FROM sentinel.scores
GROUP BY hour, scorer_version, model_id, niche;

INSERT INTO sentinel.scores_hourly
SELECT toStartOfHour(scored_at), scorer_version, model_id, niche, uniqExactState(job_id), avgState(clip_prompt_score)
FROM sentinel.scores FINAL
GROUP BY toStartOfHour(scored_at), scorer_version, model_id, niche;
