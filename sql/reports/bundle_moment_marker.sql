-- Bundle export, only for a "latest per job" report whose window holds no FID moment state of the
-- scorer version the report resolved (moment_versions.sql: the newest version of the whole store,
-- e.g. one rescored for another window): that version's most recently updated state. Its bucket
-- lies outside the window, so no number reads it; it makes the verifying store resolve the same
-- version instead of none.
SELECT * REPLACE (toDateTime64(bucket, 3, 'UTC') AS bucket)  -- a timestamp in Parquet, not epoch seconds
FROM sentinel.feature_moments FINAL
WHERE scorer_version = {scorer_version:String}
ORDER BY updated_at DESC
LIMIT 1
