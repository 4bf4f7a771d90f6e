-- The materialized views an insert into one table feeds (empty: none). The embedded store
-- journals only inserts into such tables (warehouse/journal.py): a kill can tear an insert
-- between the table's part and its views' parts, while a part on its own is atomic.
SELECT dependencies_table AS views
FROM system.tables
WHERE database = if({database:String} = '', currentDatabase(), {database:String}) AND name = {table:String}
