"""The run record (``etl.runs``): one place that starts, finishes and fails a run.

Every write to the warehouse is a run with an id: an ETL load (``sdi.etl.runner``) and the
work outside a load (``sdi planning refresh``, ``sdi hazard recompute``: ``sdi.cli_support.
recorded_run``). The rows a run writes carry its id, their lineage.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from sdi.sql import one

# What a finished run may record beside its status and message (columns of etl.runs)
COUNTS = ("rows_read", "added", "updated", "unchanged", "retired", "rejected", "repaired")


def start(conn: psycopg.Connection, job: str, options: dict[str, Any] | None = None) -> int:
    """A new run of ``job``, 'running' (committed first, so others see it); its id."""
    cursor = conn.execute(
        "INSERT INTO etl.runs (job, status, options) VALUES (%s, 'running', %s) RETURNING run_id",
        (job, Jsonb(options or {})),
    )
    return one(cursor)[0]


def skipped(
    conn: psycopg.Connection, job: str, message: str, options: dict[str, Any] | None = None
) -> int:
    """A run of ``job`` that had nothing to do, recorded as finished; its id."""
    cursor = conn.execute(
        "INSERT INTO etl.runs (job, status, finished_at, message, options) "
        "VALUES (%s, 'skipped', clock_timestamp(), %s, %s) RETURNING run_id",
        (job, message, Jsonb(options or {})),
    )
    return one(cursor)[0]


def finish(
    conn: psycopg.Connection,
    run_id: int,
    status: str,
    message: str | None = None,
    **counts: int | None,
) -> None:
    """Close a run with ``status`` ('succeeded', 'failed', 'rejected'), its message and the
    counts given (``COUNTS``; those not given stay as they are)."""
    unknown = set(counts) - set(COUNTS)
    if unknown:
        raise TypeError(f"etl.runs has no count {', '.join(sorted(unknown))}")
    names = list(counts)
    assignments = sql.SQL("").join(
        sql.SQL(", {} = %s").format(sql.Identifier(name)) for name in names
    )
    conn.execute(
        sql.SQL(
            "UPDATE etl.runs SET status = %s, finished_at = clock_timestamp(), message = %s{} "
            "WHERE run_id = %s"
        ).format(assignments),
        (status, message, *(counts[name] for name in names), run_id),
    )


def fail(conn: psycopg.Connection, run_id: int, message: str) -> None:
    """Close a run as 'failed' with the error."""
    finish(conn, run_id, "failed", message)


def fail_interrupted(conn: psycopg.Connection, job: str) -> None:
    """Mark as failed the runs of ``job`` still 'running': the caller holds the job's lock, so
    they were killed (nothing of theirs was committed)."""
    conn.execute(
        "UPDATE etl.runs SET status = 'failed', finished_at = clock_timestamp(), "
        "message = 'interrupted: the process stopped before the run finished; "
        "nothing was written' WHERE job = %s AND status = 'running'",
        (job,),
    )
