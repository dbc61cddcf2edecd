-- Finished jobs older than the retention, with their results (sdi.jobs.store.purge)
DELETE FROM jobs.process_jobs
 WHERE finished IS NOT NULL AND finished < now() - make_interval(secs => %(seconds)s)
RETURNING job_id::text
