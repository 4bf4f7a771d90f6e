-- Which of the given (job id, scorer version) pairs already have a score row: the scores agent
-- (worker/agents/scores.py) inserts each pair once, whatever batch a re-delivered JobScored
-- arrives in. The two arrays are the batch's job ids and versions; the caller keeps only its
-- own pairs. (job_id, scorer_version) is the table's sort key: an index lookup, no FINAL.
SELECT DISTINCT job_id, toString(scorer_version) AS scorer_version
FROM sentinel.scores
WHERE job_id IN {job_ids:Array(String)} AND scorer_version IN {scorer_versions:Array(String)}
