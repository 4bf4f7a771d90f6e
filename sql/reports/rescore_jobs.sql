-- Stored jobs with their images for rescoring, one page at a time (keyset on job_id):
-- jobs requested in [start, end) with job_id > {after}, at most {limit}. An image kept by
-- reference (0011) has an empty image here and its object store URI in image_uri.
SELECT j.job_id AS job_id, j.model_id AS model_id, j.niche AS niche, j.prompt AS prompt,
       j.requested_at AS requested_at, j.source_partition AS source_partition,
       j.source_offset AS source_offset, i.media_type AS media_type, i.image AS image,
       i.reference_image AS reference_image, j.image_uri AS image_uri, j.reference_uri AS reference_uri
FROM
(
    SELECT job_id, model_id, niche, prompt, requested_at, source_partition, source_offset, image_uri, reference_uri
    FROM sentinel.jobs FINAL
    WHERE requested_at >= {start:DateTime64(3)} AND requested_at < {end:DateTime64(3)}
      AND job_id > {after:String}
    ORDER BY job_id
    LIMIT {limit:UInt32}
) AS j
INNER JOIN (SELECT job_id, media_type, image, reference_image FROM sentinel.job_images FINAL) AS i
    ON i.job_id = j.job_id
ORDER BY job_id
