-- The first sorting-key column of a table (job_id for sentinel.jobs): warehouse/repair.py reads
-- the stored rows that may match a journaled insert by it (an index range), then compares whole rows.
SELECT splitByString(', ', sorting_key)[1] AS first_key
FROM system.tables
WHERE database = {database:String} AND name = {table:String}
