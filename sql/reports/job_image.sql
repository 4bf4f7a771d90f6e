-- One job's stored output image and its media type.
SELECT media_type, image
FROM sentinel.job_images FINAL
WHERE job_id = {job_id:String}
LIMIT 1
