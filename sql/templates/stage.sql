-- An empty in-memory table shaped like {table}'s ordinary columns, for the journaled rows of an
-- insert being mended (warehouse/repair.py). One a kill left behind is dropped first: a
-- migration may have changed the table's shape since.
DROP TABLE IF EXISTS {database:Identifier}.{staging:Identifier};
CREATE TABLE {database:Identifier}.{staging:Identifier} ENGINE = Memory
AS SELECT * FROM {database:Identifier}.{table:Identifier} LIMIT 0
