"""Shared by the command-line tools that do warehouse work outside an ETL load
(``sdi planning refresh``, ``sdi hazard recompute``): the work is recorded as a run of its own
in etl.runs, so the rows it writes have a lineage like those of a load."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import psycopg

from sdi.db import connect, ensure_database


class _Summarised(Protocol):
    def summary(self) -> str: ...


def recorded_run[R: _Summarised](
    job: str, work: Callable[[psycopg.Connection, int], R]
) -> tuple[int, R]:
    """Run ``work(conn, run_id)`` as a run of ``job``: 'running' first (committed, so others see
    it), then 'succeeded' with the result's summary, or 'failed' with the error, which is
    re-raised. ``conn`` is in autocommit: ``work`` manages its own transaction."""
    ensure_database()
    with connect(autocommit=True) as conn:
        run_id = conn.execute(
            "INSERT INTO etl.runs (job, status) VALUES (%s, 'running') RETURNING run_id",
            (job,),
        ).fetchone()[0]
        try:
            result = work(conn, run_id)
        except Exception as exc:
            conn.execute(
                "UPDATE etl.runs SET status = 'failed', finished_at = clock_timestamp(), "
                "message = %s WHERE run_id = %s",
                (f"{type(exc).__name__}: {exc}", run_id),
            )
            raise
        conn.execute(
            "UPDATE etl.runs SET status = 'succeeded', finished_at = clock_timestamp(), "
            "message = %s WHERE run_id = %s",
            (result.summary(), run_id),
        )
    return run_id, result
