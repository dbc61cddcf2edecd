-- The worker that ran a job records its end (sdi.jobs.store.finish); only the worker holding
-- it, and only while it is still running (a job failed by the stalled check stays failed).
UPDATE jobs.process_jobs
   SET status = %(status)s, finished = now(), updated = now(), progress = 100,
       message = %(message)s, mimetype = %(mimetype)s, result = %(result)s
 WHERE job_id = %(job_id)s AND status = 'running' AND worker = %(worker)s
