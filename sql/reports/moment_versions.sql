-- Scorer versions that have feature moments (stored states, or tail rows no state holds yet:
-- migration 0014), newest first.
SELECT scorer_version, max(updated_at) AS updated_at, sum(n) AS n
FROM
(
    SELECT scorer_version, updated_at, n
    FROM sentinel.feature_moments FINAL
    UNION ALL
    SELECT scorer_version, written_at AS updated_at, toUInt64(1) AS n
    FROM sentinel.feature_moment_tail_unheld
)
GROUP BY scorer_version
ORDER BY updated_at DESC
