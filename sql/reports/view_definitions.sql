-- The materialized views an insert into one table feeds: each view's target, its SELECT as the
-- database stores it, and its output columns in order. warehouse/repair.py runs that SELECT
-- again to rebuild a target from its source after a kill (repair/rebuild_view.sql).
SELECT
    v.name AS view,
    extract(v.create_table_query, '^CREATE MATERIALIZED VIEW \\S+ TO (\\S+)') AS target,
    v.as_select AS select_query,
    c.columns AS columns
FROM system.tables AS v
INNER JOIN
(
    SELECT table, arrayMap(p -> p.2, arraySort(groupArray((position, name)))) AS columns
    FROM system.columns
    WHERE database = {database:String}
    GROUP BY table
) AS c ON c.table = v.name
WHERE v.database = {database:String}
  AND v.engine = 'MaterializedView'
  AND v.name IN (SELECT arrayJoin(dependencies_table) FROM system.tables WHERE database = {database:String} AND name = {table:String})
ORDER BY view
