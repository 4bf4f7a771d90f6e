SELECT version FROM sentinel.schema_migrations FINAL ORDER BY version
