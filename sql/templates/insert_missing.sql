-- The staged rows {table} lacks (count_missing.sql), inserted with deduplication off (set by the
-- caller): their block id is the one the deduplication log holds without the rows.
INSERT INTO {database:Identifier}.{table:Identifier} ({columns})
SELECT {columns}
FROM {database:Identifier}.{staging:Identifier}
WHERE cityHash64(tuple({columns})) NOT IN (
    SELECT cityHash64(tuple({columns})) FROM {database:Identifier}.{table:Identifier}
    WHERE {first} IN (SELECT {first} FROM {database:Identifier}.{staging:Identifier}))
