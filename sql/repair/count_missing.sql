-- How many staged rows {table} lacks: no stored row has their key ({key}: the sorting key, and
-- a ReplacingMergeTree's version column). A lightweight-deleted row counts as lacking.
SELECT count() AS n
FROM {database:Identifier}.{staging:Identifier}
WHERE ({key}) NOT IN (
    SELECT {key} FROM {database:Identifier}.{table:Identifier}
    WHERE {first} IN (SELECT {first} FROM {database:Identifier}.{staging:Identifier}))
