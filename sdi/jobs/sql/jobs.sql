-- A page of the jobs a caller may see, newest first (sdi.jobs.store.page): an owner's, and
-- the jobs of process %(shared_process)s recorded for department %(department)s (etl-run:
-- inputs._caller.job_department), or every job for an administrator (%(all)s)
SELECT job_id::text AS identifier, process_id, owner, status, message, progress, mimetype,
       to_char(created AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created,
       to_char(started AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS started,
       to_char(updated AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS updated,
       to_char(finished AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS finished,
       (inputs -> '_caller' ->> 'job_department') AS shared_with,
       count(*) OVER () AS matched
  FROM jobs.process_jobs
 WHERE %(all)s OR owner = %(owner)s
    OR (process_id = %(shared_process)s AND (inputs -> '_caller' ->> 'job_department') = %(department)s)
 ORDER BY created DESC, job_id
 LIMIT %(limit)s OFFSET %(offset)s
