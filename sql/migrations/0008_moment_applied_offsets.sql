-- FID moment states that stay exact when records arrive out of order.
--
-- Faust can hand the score agent a record after later ones (a re-read of a record it failed
-- to deliver, fixes in streams/faust_fixes.py), so "apply every offset above last_offset" lost
-- images (seen: 176 of 2,000 after worker SIGKILLs). A state now says exactly what it holds:
-- every offset of its key below complete_below, plus the offsets in applied_offsets. The
-- worker raises complete_below to the committed offset of the source partition when it writes
-- (an offset below the commit was acknowledged by the score agent, which acknowledges only
-- after writing it here), so applied_offsets stays the short uncommitted tail.
-- last_offset stays the ReplacingMergeTree version (the highest offset applied: a late record
-- rewrites the state with the same version; ClickHouse keeps the last inserted of equal
-- versions). Rows written before this migration hold every offset up to last_offset.
ALTER TABLE sentinel.feature_moments ADD COLUMN IF NOT EXISTS complete_below UInt64 DEFAULT last_offset + 1 AFTER last_offset;
ALTER TABLE sentinel.feature_moments ADD COLUMN IF NOT EXISTS applied_offsets Array(UInt64) DEFAULT [] AFTER complete_below;
