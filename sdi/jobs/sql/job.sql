-- One job, as pygeoapi describes it (sdi.jobs.store.get)
SELECT job_id::text AS identifier, process_id, owner, status, message, progress, mimetype,
       to_char(created AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created,
       to_char(started AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS started,
       to_char(updated AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS updated,
       to_char(finished AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS finished,
       (inputs -> '_caller' ->> 'job_department') AS shared_with
  FROM jobs.process_jobs
 WHERE job_id = %(job_id)s
