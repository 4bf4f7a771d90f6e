-- How many staged rows {table} lacks: no stored row equals one over the journaled columns
-- ({columns}; a moment state rewritten by a late record keeps its key and version and changes
-- its sums, so keys alone would take it as stored), stored rows read by the first key column.
-- A NULL inside the tuple hashes as a value. A lightweight-deleted row counts as lacking. (The
-- alias is one no table has: a column named like it would be shadowed in the WHERE.)
SELECT count() AS _repair_missing
FROM {database:Identifier}.{staging:Identifier}
WHERE cityHash64(tuple({columns})) NOT IN (
    SELECT cityHash64(tuple({columns})) FROM {database:Identifier}.{table:Identifier}
    WHERE {first} IN (SELECT {first} FROM {database:Identifier}.{staging:Identifier}))
