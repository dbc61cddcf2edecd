-- Process jobs whose queue job is over, gone, or was held by a dead worker, but which are still
-- accepted or running (sdi.jobs.store.fail_orphans): failed, with the reason.
UPDATE jobs.process_jobs p
   SET status = 'failed', finished = now(), updated = now(), progress = 100,
       message = %(message)s
 WHERE p.status IN ('accepted', 'running')
   AND (p.queue_job_id = ANY(%(stalled)s)
        OR (p.queue_job_id IS NOT NULL AND NOT EXISTS (
              SELECT 1 FROM jobs.procrastinate_jobs q
               WHERE q.id = p.queue_job_id AND q.status IN ('todo', 'doing')))
        OR (p.queue_job_id IS NULL AND p.created < now() - interval '1 minute'))
RETURNING p.job_id::text
