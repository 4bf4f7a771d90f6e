-- FID moment states keep Σxxᵀ as its upper triangle, diagonal included, row by row
-- (D(D+1)/2 values: 1 MiB per ViT-B/32 state instead of 2). The matrix is symmetric to the
-- bit (numpy computes xᵀx as a symmetric rank-k update, and sums of symmetric matrices stay
-- symmetric), so nothing is lost; a worker rewrites a whole state for every batch that touches
-- its key, and half the bytes is half of that write. sum_outer (all D² values) stays for the
-- states written before this migration and is empty in new ones; readers add both
-- (warehouse/moments.py), so a window mixing old and new states merges them. No compression:
-- LZ4 saved 0.75% of these bytes and cost 12% of the insert (30 ViT-B/32 states: 343 -> 302 ms).
ALTER TABLE sentinel.feature_moments ADD COLUMN IF NOT EXISTS sum_outer_upper Array(Float64) DEFAULT [] CODEC(NONE) AFTER sum_outer;
