-- Scorer versions that have feature moments, newest first.
SELECT scorer_version, max(updated_at) AS updated_at, sum(n) AS n
FROM sentinel.feature_moments FINAL
GROUP BY scorer_version
ORDER BY updated_at DESC
