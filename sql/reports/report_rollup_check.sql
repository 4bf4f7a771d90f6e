-- Whether the score rollup can give each job's CLIP exactly as benchmark.sql does, over the
-- window's full hours [hours_start, hours_end): every score row of the asked version(s) was
-- placed at its job's hour (unplaced = 0), and, for scorer_version = '' (each job's latest
-- score), no job-hour cell holds two scorer versions (then a job may have two scores and only
-- its latest counts: the report reads the event log instead).
SELECT
    countIf(NOT placed)             AS unplaced,
    max(if(placed, versions, 0))    AS max_versions_per_cell
FROM
(
    SELECT placed, hour, model_id, niche, uniqExact(scorer_version) AS versions
    FROM sentinel.report_scores_hourly
    WHERE ({scorer_version:String} = '' OR scorer_version = {scorer_version:String})
      AND (NOT placed OR (hour >= {hours_start:DateTime64(3)} AND hour < {hours_end:DateTime64(3)}))
    GROUP BY placed, hour, model_id, niche
)
