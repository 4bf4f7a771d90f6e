-- The content hash of each stored job (schemas.codec.content_hash). The worker's duplicate gate
-- (streams/gate.py) compares a re-used job id against the stored copy: same hash = a benign
-- re-delivery (skipped), another hash = a conflict (dead-lettered). Rows stored before this
-- migration have an empty hash.
ALTER TABLE sentinel.jobs ADD COLUMN IF NOT EXISTS content_hash String DEFAULT '' AFTER source_offset;
