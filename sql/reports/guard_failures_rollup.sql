-- guard_failures.sql over sentinel.report_jobs (sql/migrations/0012), no FINAL needed.
--
-- Failed guard checks per model (niche = '*') and per model x niche: how many attempts failed
-- each check (an attempt failing two checks counts once under each) and that as a share of the
-- group's judged attempts (attempts with a verdict).
WITH
    a AS (
        SELECT model_id, niche, guard_failed_checks
        FROM sentinel.report_jobs
        WHERE requested_at >= {start:DateTime64(3)} AND requested_at < {end:DateTime64(3)}
          AND guard_passed IS NOT NULL
    ),
    judged AS (
        SELECT a.model_id AS model_id, if(grouping(a.niche) = 1, '*', a.niche) AS niche, count() AS judged
        FROM a
        GROUP BY GROUPING SETS ((a.model_id), (a.model_id, a.niche))
    ),
    failures AS (
        SELECT a.model_id AS model_id, if(grouping(a.niche) = 1, '*', a.niche) AS niche, check_name, count() AS failed
        FROM a
        ARRAY JOIN a.guard_failed_checks AS check_name
        GROUP BY GROUPING SETS ((a.model_id, check_name), (a.model_id, a.niche, check_name))
    )
SELECT
    f.model_id                  AS model,
    f.niche                     AS niche,
    f.check_name                AS check_name,
    f.failed                    AS failed,
    f.failed / j.judged         AS failed_share
FROM failures AS f
INNER JOIN judged AS j ON j.model_id = f.model_id AND j.niche = f.niche
ORDER BY model, niche = '*' DESC, niche, failed DESC, check_name
