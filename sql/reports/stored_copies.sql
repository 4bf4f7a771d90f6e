-- The stored copy of each given job id: where it was read from (source partition and offset)
-- and its content hash. Used by the worker's duplicate gate (streams/gate.py); job_id is the
-- table's sort key, so this is an index lookup. Re-inserts of one copy are identical, so no
-- FINAL: the earliest row per job id.
SELECT job_id, source_partition, source_offset, content_hash
FROM sentinel.jobs
WHERE job_id IN {job_ids:Array(String)}
ORDER BY job_id, ingested_at
LIMIT 1 BY job_id
