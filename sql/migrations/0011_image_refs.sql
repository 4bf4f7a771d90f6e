-- Images by reference (claim check, objects/store.py): an image above the inline limit is kept
-- in the object store under its sha256 and sentinel.job_images holds an empty image for it.
-- Every job keeps the sha256 of its image bytes (inline or by reference: the same digest either
-- way), and the object store URIs of an image and a reference photo sent by reference.
-- Rows stored before this migration have empty values.
ALTER TABLE sentinel.jobs ADD COLUMN IF NOT EXISTS image_sha256 String DEFAULT '' AFTER content_hash;
ALTER TABLE sentinel.jobs ADD COLUMN IF NOT EXISTS image_uri String DEFAULT '' AFTER image_sha256;
ALTER TABLE sentinel.jobs ADD COLUMN IF NOT EXISTS reference_uri String DEFAULT '' AFTER image_uri;
