-- The materialized views an insert into one table feeds: each view's target, its SELECT as the
-- database stores it, its output columns in order, and how many views in the database write to
-- that target (warehouse/repair.py rebuilds a target only when this table's view is its one
-- feeder). The SELECT is run again to rebuild the target (templates/rebuild_view.sql).
SELECT
    v.name AS view,
    extract(v.create_table_query, '^CREATE MATERIALIZED VIEW \\S+ TO (\\S+)') AS target,
    v.as_select AS select_query,
    c.columns AS columns,
    f.feeders AS feeders
FROM system.tables AS v
INNER JOIN
(
    SELECT table, arrayMap(p -> p.2, arraySort(groupArray((position, name)))) AS columns
    FROM system.columns
    WHERE database = {database:String}
    GROUP BY table
) AS c ON c.table = v.name
LEFT JOIN
(
    SELECT extract(create_table_query, '^CREATE MATERIALIZED VIEW \\S+ TO (\\S+)') AS fed, count() AS feeders
    FROM system.tables
    WHERE database = {database:String} AND engine = 'MaterializedView'
    GROUP BY fed
) AS f ON f.fed = extract(v.create_table_query, '^CREATE MATERIALIZED VIEW \\S+ TO (\\S+)')
WHERE v.database = {database:String}
  AND v.engine = 'MaterializedView'
  AND v.name IN (SELECT arrayJoin(dependencies_table) FROM system.tables WHERE database = {database:String} AND name = {table:String})
ORDER BY view
