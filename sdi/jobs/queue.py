"""The task queue: procrastinate on the warehouse's PostgreSQL, and the tasks ``sdi worker`` runs.

Tasks (names as procrastinate records them):

- ``sdi:run_process`` (queue ``processes``): an asynchronous OGC API process job
  (:mod:`sdi.jobs.store` holds its record). The processor is the one ``pygeoapi-config.yml``
  names for the process, loaded by pygeoapi's plugin loader exactly as the server does, so any
  configured process runs asynchronously the same way. Not retried: a failure is the job's
  answer, and a job whose worker died is failed by :func:`housekeeping` (a process may be
  costly; the client decides whether to run it again).
- ``sdi:etl_run`` (queue ``etl``): one ETL job through the normal runner (``sdi.etl.runner``,
  its advisory lock per job, its run record, its after-load hooks). procrastinate's lock
  ``etl:<job>`` keeps two runs of a job from being *taken* at once, and the runner's advisory
  lock stays the guard that they never *run* at once (against ``sdi etl run`` from a shell
  too): a run that finds the job locked is retried later. A run whose worker died is queued
  again by :func:`housekeeping` (the runner marks the killed run failed and rolls back nothing
  it had not committed: a run is all or nothing).
- ``sdi:housekeeping`` (every minute, and at each worker's start): fails the process jobs of
  dead workers, re-queues their ETL runs, purges finished jobs past the retention.

The queue's tables are in schema ``jobs`` (migration 0009); every connection of the queue has
``search_path = jobs, public`` because procrastinate's SQL names no schema.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import psycopg
import yaml
from procrastinate import App, Blueprint, JobContext, PsycopgConnector, RetryStrategy
from procrastinate.jobs import Status
from psycopg_pool import ConnectionPool

from sdi.db import database_url
from sdi.errors import SdiError
from sdi.jobs import store
from sdi.settings import get_settings

LOGGER = logging.getLogger("sdi.jobs")

SEARCH_PATH = "-c search_path=jobs,public"
PROCESS_QUEUE = "processes"
ETL_QUEUE = "etl"
QUEUES = (PROCESS_QUEUE, ETL_QUEUE, "housekeeping")

tasks = Blueprint()


@lru_cache(maxsize=1)
def get_app() -> App:
    """The procrastinate app of this process (its connection pool opens on first use)."""
    app = App(
        connector=PsycopgConnector(
            conninfo=database_url(),
            kwargs={"options": SEARCH_PATH},
            min_size=1,
            max_size=4,
            max_lifetime=1800,
            timeout=10,
        ),
        import_paths=[],
    )
    app.add_tasks_from(tasks, namespace="sdi")
    return app


_jobs_pool: ConnectionPool | None = None
_jobs_pool_lock = threading.Lock()


def jobs_pool() -> ConnectionPool:
    """A small pool for the job records and the deferring of this process (the API server's
    threads): two connections, ``jobs`` first in the search path; opened on first use."""
    global _jobs_pool
    with _jobs_pool_lock:
        if _jobs_pool is None:
            _jobs_pool = ConnectionPool(
                database_url(),
                min_size=0,
                max_size=2,
                max_lifetime=1800,
                max_idle=120,
                timeout=5,
                kwargs={"options": SEARCH_PATH},
                check=ConnectionPool.check_connection,  # none stale after a database restart
                name="sdi-jobs",
                open=True,
            )
            atexit.register(_jobs_pool.close)
        return _jobs_pool


@contextmanager
def jobs_connection() -> Iterator[psycopg.Connection]:
    """A connection of :func:`jobs_pool`, committed when the block ends without error."""
    with jobs_pool().connection() as conn:
        yield conn


def open_sync() -> App:
    """The app opened for deferring from synchronous code, on :func:`jobs_pool`."""
    app = get_app()
    app.open(jobs_pool())
    return app


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# -- enqueueing -------------------------------------------------------------------------------
def defer_process(job_id: str) -> int:
    """Queue an accepted process job; the queue job's id."""
    return open_sync().configure_task("sdi:run_process", queue=PROCESS_QUEUE).defer(job_id=job_id)


def defer_etl_run(job: str, *, force: bool = False) -> int:
    """Queue one run of ETL job ``job`` (a file name in etl/jobs/ without .yml); its id.

    Callers: the HTTP etl-run process and scheduled refreshes. One run of a job is taken at a
    time (procrastinate lock); the ETL's advisory lock serialises them with shell runs.
    """
    return (
        open_sync()
        .configure_task("sdi:etl_run", queue=ETL_QUEUE, lock=f"etl:{job}")
        .defer(job=job, force=force)
    )


# -- tasks ------------------------------------------------------------------------------------
@tasks.task(name="run_process", queue=PROCESS_QUEUE, pass_context=True)
def run_process(context: JobContext, job_id: str) -> None:
    """Run one accepted process job and store its result (or why it failed)."""
    worker = f"{worker_name()}/{context.job.id if context.job else '?'}"
    with psycopg.connect(database_url(), autocommit=True) as conn:
        claimed = store.claim(conn, job_id, worker)
    if claimed is None:
        LOGGER.info("process job %s is no longer waiting; nothing to run", job_id)
        return
    status, message, mimetype, output = _execute(claimed)
    with psycopg.connect(database_url(), autocommit=True) as conn:
        if not store.finish(
            conn, job_id, worker, status=status, message=message, mimetype=mimetype, result=output
        ):
            LOGGER.warning("process job %s was failed or dismissed while it ran", job_id)


def _execute(claimed: dict[str, Any]) -> tuple[str, str, str | None, bytes | None]:
    """(status, message, media type, result bytes) of running a claimed job."""
    from pygeoapi.process.base import ProcessorExecuteError

    try:
        processor = processor_for(claimed["process_id"])
        mimetype, outputs = processor.execute(claimed["inputs"])
    except ProcessorExecuteError as exc:
        return "failed", f"InvalidParameterValue: {exc.message}", None, None
    except Exception:
        LOGGER.exception("process job failed")
        return (
            "failed",
            "NoApplicableCode: the process failed; the error has been logged",
            None,
            None,
        )
    if claimed["requested_response"] == "document":
        outputs = {"outputs": [outputs]}
    return "successful", "Job complete", mimetype, store.encode_result(outputs)


def processor_for(process_id: str) -> Any:
    """The pygeoapi processor the configuration names for ``process_id``."""
    from pygeoapi.plugin import load_plugin

    resource = _processes(get_settings().pygeoapi_config).get(process_id)
    if resource is None:
        raise SdiError(f"no process {process_id!r} in {get_settings().pygeoapi_config}")
    return load_plugin("process", resource["processor"])


@lru_cache(maxsize=4)
def _processes(config: Path) -> dict[str, dict[str, Any]]:
    with config.open(encoding="utf-8") as handle:
        resources = (yaml.safe_load(handle) or {}).get("resources") or {}
    return {k: v for k, v in resources.items() if v.get("type") == "process"}


class EtlLocked(Exception):
    """The ETL job's advisory lock is held: retried later."""


@tasks.task(
    name="etl_run",
    queue=ETL_QUEUE,
    retry=RetryStrategy(max_attempts=20, wait=30, retry_exceptions={EtlLocked}),
)
def etl_run(job: str, force: bool = False) -> dict[str, Any]:
    """One run of an ETL job through the normal runner; its outcome (kept by procrastinate
    with the queue job until purged)."""
    from sdi.errors import JobLockedError
    from sdi.etl.runner import run_job
    from sdi.etl.spec import resolve_jobs

    settings = get_settings()
    (spec,) = resolve_jobs([job], settings)  # an unknown job: ConfigError, the job fails
    try:
        result = run_job(spec, database_url(), force=force, settings=settings)
    except JobLockedError as exc:
        raise EtlLocked(str(exc)) from None
    return {"job": result.job, "run_id": result.run_id, "status": result.status}


@tasks.periodic(cron="* * * * *", periodic_id="housekeeping")
@tasks.task(name="housekeeping", queue="housekeeping", queueing_lock="housekeeping")
async def housekeeping_task(timestamp: int) -> dict[str, int]:
    return await housekeeping()


async def housekeeping() -> dict[str, int]:
    """Fail the process jobs of dead workers, re-queue their ETL runs, purge old jobs.

    A worker is dead when its heartbeat is older than ``SDI_WORKER_STALLED_SECONDS``; until
    then its jobs are left alone, so a job never runs twice at once.
    """
    settings = get_settings()
    manager = get_app().job_manager
    stalled = list(
        await manager.get_stalled_jobs(seconds_since_heartbeat=settings.worker_stalled_seconds)
    )
    failed_queue_jobs = []
    requeued = 0
    for job in stalled:
        assert job.id is not None
        if job.task_name == "sdi:etl_run":
            await manager.retry_job(job)
            requeued += 1
            LOGGER.warning("ETL run %s: its worker died; queued again", job.task_kwargs)
        else:
            await manager.finish_job_by_id_async(job.id, status=Status.FAILED, delete_job=False)
            failed_queue_jobs.append(job.id)
    await manager.prune_stalled_workers(settings.worker_stalled_seconds)
    retention = settings.job_retention_hours * 3600
    with psycopg.connect(database_url(), autocommit=True) as conn:
        failed = store.fail_orphans(
            conn,
            failed_queue_jobs,
            "NoApplicableCode: the worker running this job stopped before it finished; "
            "execute the process again",
        )
        purged = store.purge(conn, retention)
    await manager.delete_old_jobs(
        nb_hours=max(1, round(settings.job_retention_hours)), include_failed=True
    )
    if failed or purged or requeued:
        LOGGER.warning(
            "housekeeping: %d job(s) failed (worker gone), %d ETL run(s) re-queued, %d purged",
            len(failed),
            requeued,
            len(purged),
        )
    return {"failed": len(failed), "requeued": requeued, "purged": len(purged)}
