-- Whether the snapshot table exists (a store not migrated since 0010 has none: the report then
-- has no trend rather than failing).
SELECT count() AS n FROM system.tables WHERE database = 'sentinel' AND name = 'benchmark_snapshots'
