-- One job's stored output image and its media type; image_uri is set (and image empty) when the
-- image is kept by reference in the object store (0011).
SELECT i.media_type AS media_type, i.image AS image, j.image_uri AS image_uri
FROM (SELECT job_id, media_type, image FROM sentinel.job_images FINAL WHERE job_id = {job_id:String} LIMIT 1) AS i
LEFT JOIN (SELECT job_id, image_uri FROM sentinel.jobs FINAL WHERE job_id = {job_id:String} LIMIT 1) AS j
    ON j.job_id = i.job_id
