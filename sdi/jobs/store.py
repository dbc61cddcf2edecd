"""The records of asynchronous OGC API process jobs, in ``jobs.process_jobs`` (migration 0009).

Every server process and instance and every worker reads and writes the same rows, so a job
created through one instance is seen through any other and survives restarts. A result is
kept in its row (bytes and media type): nothing of a job is on a machine's disk. Who may see
a job is decided by the caller (:mod:`sdi.api.processes`); here ``owner`` is only a column, and
``shared_with`` the department an etl-run job was recorded for (its inputs' ``_caller``).

Each function takes a psycopg connection and commits nothing itself: the caller's
``with pool.connection()`` (or an autocommit connection) does.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from sdi import sql

FINAL = ("successful", "failed")


def add(
    conn: psycopg.Connection,
    process_id: str,
    inputs: dict[str, Any],
    owner: str | None,
    requested_response: str = "raw",
) -> str:
    """A new accepted job; its id (a random UUID: ids are not a secret, but need not be
    guessable either)."""
    job_id = str(uuid.uuid4())
    conn.execute(
        sql.query("sdi.jobs", "add"),
        {
            "job_id": job_id,
            "process_id": process_id,
            "owner": owner,
            "inputs": Jsonb(inputs),
            "requested_response": requested_response,
        },
    )
    return job_id


def set_queue_job(conn: psycopg.Connection, job_id: str, queue_job_id: int) -> None:
    conn.execute(
        "UPDATE jobs.process_jobs SET queue_job_id = %s WHERE job_id = %s",
        (queue_job_id, job_id),
    )


def claim(conn: psycopg.Connection, job_id: str, worker: str) -> dict[str, Any] | None:
    """Mark an accepted job running for ``worker``: its process, inputs and requested response,
    or None when it is not (any longer) accepted: dismissed, failed meanwhile, or taken."""
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(
            sql.query("sdi.jobs", "claim"), {"job_id": job_id, "worker": worker}
        ).fetchone()


def finish(
    conn: psycopg.Connection,
    job_id: str,
    worker: str,
    *,
    status: str,
    message: str,
    mimetype: str | None = None,
    result: bytes | None = None,
) -> bool:
    """Record a job's end; False when the job was no longer this worker's (failed by the
    stalled check or dismissed meanwhile: its record stays as it is)."""
    if status not in FINAL:
        raise ValueError(f"a job ends successful or failed, not {status!r}")
    cursor = conn.execute(
        sql.query("sdi.jobs", "finish"),
        {
            "job_id": job_id,
            "worker": worker,
            "status": status,
            "message": message,
            "mimetype": mimetype,
            "result": result,
        },
    )
    return cursor.rowcount == 1


def get(conn: psycopg.Connection, job_id: str) -> dict[str, Any] | None:
    """A job as pygeoapi describes one (identifier, process_id, status, timestamps…)."""
    if not _is_uuid(job_id):
        return None
    with conn.cursor(row_factory=dict_row) as cursor:
        row = cursor.execute(sql.query("sdi.jobs", "job"), {"job_id": job_id}).fetchone()
    return _described(row) if row else None


def page(
    conn: psycopg.Connection,
    owner: str | None,
    *,
    everyone: bool,
    limit: int,
    offset: int,
    shared: tuple[str, str] | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """(jobs, number matched) of one owner, or of everyone, newest first; with ``shared``
    (process id, department) also the jobs of that process recorded for that department
    (``shared_with``: the etl-run jobs of a department's deliveries)."""
    shared_process, department = shared or (None, None)
    with conn.cursor(row_factory=dict_row) as cursor:
        rows = cursor.execute(
            sql.query("sdi.jobs", "jobs"),
            {
                "all": everyone,
                "owner": owner,
                "limit": limit,
                "offset": offset,
                "shared_process": shared_process,
                "department": department,
            },
        ).fetchall()
    matched = rows[0]["matched"] if rows else 0
    return [_described(row) for row in rows], matched


def result(conn: psycopg.Connection, job_id: str) -> tuple[str | None, Any] | None:
    """(media type, output) of a successful job: JSON decoded, anything else as bytes."""
    if not _is_uuid(job_id):
        return None
    row = conn.execute(
        "SELECT mimetype, result FROM jobs.process_jobs "
        "WHERE job_id = %s AND status = 'successful'",
        (job_id,),
    ).fetchone()
    if row is None or row[1] is None:
        return None
    mimetype, data = row[0], bytes(row[1])
    if mimetype and mimetype.split(";")[0].strip() in ("application/json", "application/geo+json"):
        return mimetype, json.loads(data)
    return mimetype, data


def delete(conn: psycopg.Connection, job_id: str) -> bool:
    if not _is_uuid(job_id):
        return False
    return conn.execute("DELETE FROM jobs.process_jobs WHERE job_id = %s", (job_id,)).rowcount == 1


def fail_orphans(
    conn: psycopg.Connection, stalled_queue_jobs: list[int], message: str
) -> list[str]:
    """Fail the accepted or running jobs that can no longer end: their queue job is over or
    gone, or held by a worker found dead (``stalled_queue_jobs``). Their ids."""
    rows = conn.execute(
        sql.query("sdi.jobs", "fail_orphans"),
        {"stalled": stalled_queue_jobs, "message": message},
    ).fetchall()
    return [job_id for (job_id,) in rows]


def purge(conn: psycopg.Connection, older_than_seconds: float) -> list[str]:
    """Delete finished jobs (and their results) older than the retention; their ids."""
    rows = conn.execute(sql.query("sdi.jobs", "purge"), {"seconds": older_than_seconds})
    return [job_id for (job_id,) in rows.fetchall()]


def encode_result(outputs: Any) -> bytes:
    """A process's output as stored: JSON for objects and lists, UTF-8 for text."""
    if isinstance(outputs, bytes):
        return outputs
    if isinstance(outputs, str):
        return outputs.encode("utf-8")
    return json.dumps(outputs, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _described(row: dict[str, Any]) -> dict[str, Any]:
    job = {k: v for k, v in row.items() if k != "matched"}
    # pygeoapi's job fields: the result link's type, and no file location (results are rows)
    job["mimetype"] = job["mimetype"] or "application/json"
    job["location"] = None
    job["type"] = "process"
    job["parameters"] = None
    return job


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True
