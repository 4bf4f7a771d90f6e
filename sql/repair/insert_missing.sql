-- The staged rows {table} lacks (count_missing.sql), inserted with deduplication off (set by the
-- caller): their block id is the one the deduplication log holds without the rows.
INSERT INTO {database:Identifier}.{table:Identifier} ({columns})
SELECT {columns}
FROM {database:Identifier}.{staging:Identifier}
WHERE ({key}) NOT IN (
    SELECT {key} FROM {database:Identifier}.{table:Identifier}
    WHERE {first} IN (SELECT {first} FROM {database:Identifier}.{staging:Identifier}));
DROP TABLE {database:Identifier}.{staging:Identifier}
