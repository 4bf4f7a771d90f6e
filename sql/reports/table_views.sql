-- The materialized views an insert into one table feeds (empty: none). warehouse/repair.py
-- refuses to rebuild a view target that feeds views itself.
SELECT dependencies_table AS views
FROM system.tables
WHERE database = {database:String} AND name = {table:String}
