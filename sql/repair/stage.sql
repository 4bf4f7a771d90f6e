-- An empty in-memory table shaped like {table}'s ordinary columns, for the journaled rows of an
-- insert being mended (warehouse/repair.py); left over by a kill, it is emptied and used again.
CREATE TABLE IF NOT EXISTS {database:Identifier}.{staging:Identifier} ENGINE = Memory
AS SELECT * FROM {database:Identifier}.{table:Identifier} LIMIT 0;
TRUNCATE TABLE {database:Identifier}.{staging:Identifier}
