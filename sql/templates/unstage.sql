-- The staging table of stage.sql, dropped once the insert is mended or has failed.
DROP TABLE IF EXISTS {database:Identifier}.{staging:Identifier}
