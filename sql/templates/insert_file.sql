-- An insert ClickHouse reads from the journal's own Arrow file (warehouse/client.py): the block
-- goes to disk once, where clickhouse-connect's chDB backend would serialize it again and write
-- a temp file of its own. {path} is the journal's file name as a literal; the dedup token is set
-- by the caller.
INSERT INTO {database:Identifier}.{table:Identifier} ({columns}) FROM INFILE {path} FORMAT Arrow
