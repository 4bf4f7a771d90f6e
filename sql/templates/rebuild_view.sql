-- A materialized view's target made again from its whole source (warehouse/repair.py). The
-- lightweight DELETE keeps the target's deduplication memory (TRUNCATE would clear it, and a
-- retried insert block would then reach the target twice); the INSERT runs with
-- insert_deduplicate = 0 (set by the caller), so no block of it is taken for an earlier one.
-- {columns} and {select} come from the database's own catalogue (view_definitions.sql).
DELETE FROM {database:Identifier}.{target:Identifier} WHERE true;
INSERT INTO {database:Identifier}.{target:Identifier} ({columns}) {select}
