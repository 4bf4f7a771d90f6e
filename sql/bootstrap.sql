-- Always applied before migrations (idempotent): the database and the migration ledger.
-- chDB's `default` database is an Overlay engine, so Sentinel keeps its own Atomic database.
CREATE DATABASE IF NOT EXISTS sentinel ENGINE = Atomic;

CREATE TABLE IF NOT EXISTS sentinel.schema_migrations
(
    version     UInt32,
    name        String,
    applied_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY version;
