-- The materialized views an insert into one table feeds (empty: none). warehouse/repair.py
-- rebuilds their targets after a torn insert, and refuses a target that feeds views itself.
SELECT dependencies_table AS views
FROM system.tables
WHERE database = if({database:String} = '', currentDatabase(), {database:String}) AND name = {table:String}
