-- The worker takes an accepted job (sdi.jobs.store.claim): no row if it is gone, finished or
-- already taken, so a job never runs twice.
UPDATE jobs.process_jobs
   SET status = 'running', started = now(), updated = now(), progress = 10,
       message = 'Job running', worker = %(worker)s
 WHERE job_id = %(job_id)s AND status = 'accepted'
RETURNING process_id, inputs, requested_response
