-- Bundle export, as bundle_moment_marker.sql, for a scorer version that has no stored state yet
-- (its images are all in the tail, migration 0014): its most recently written tail row. Its
-- bucket lies outside the window, so no number reads it.
SELECT * REPLACE (toDateTime64(bucket, 3, 'UTC') AS bucket)
FROM sentinel.feature_moment_tail FINAL
WHERE scorer_version = {scorer_version:String}
ORDER BY written_at DESC
LIMIT 1
