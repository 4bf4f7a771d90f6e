-- The identity of a table's rows (warehouse/repair.py): its sorting-key expression ("job_id,
-- scorer_version") and, for a ReplacingMergeTree with a version column, that column (a row with
-- the same key and another version is another row: a moment state of a later offset).
SELECT sorting_key, extract(engine_full, '^Replacing\\w*MergeTree\\((\\w+)') AS version
FROM system.tables
WHERE database = {database:String} AND name = {table:String}
