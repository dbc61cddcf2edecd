-- The last successful refresh of a layer's ETL jobs (sdi.api.records): a real load
-- (not a dry run) that read its source.
SELECT run_id, job, started_at, finished_at, rows_read, added, updated, retired, rejected
FROM etl.runs
WHERE job = ANY(%(jobs)s) AND status = 'succeeded'
  AND coalesce((options->>'dry_run')::boolean, false) = false
  AND rows_read IS NOT NULL
ORDER BY finished_at DESC
LIMIT 1
