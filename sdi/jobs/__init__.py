"""The job system: work queued in PostgreSQL and run by ``sdi worker`` processes.

- :mod:`sdi.jobs.store`: records of asynchronous OGC API process jobs (``jobs.process_jobs``):
  owner, status, result; shared by every server instance and worker;
- :mod:`sdi.jobs.queue`: the procrastinate app and its tasks (process jobs, ETL runs,
  housekeeping), and the functions that enqueue them;
- :mod:`sdi.jobs.worker`: the ``sdi worker`` loop.

The API server only enqueues and reports (``sdi.api.processes``); nothing of a job lives in a
server process or on its disk. ``docs/jobs.md`` describes the whole.
"""
