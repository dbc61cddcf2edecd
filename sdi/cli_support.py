"""Shared by the command-line tools.

- :func:`recorded_run`: warehouse work outside an ETL load (``sdi planning refresh``,
  ``sdi hazard recompute``) is recorded as a run of its own in etl.runs (``sdi.runs``), so
  the rows it writes have a lineage like those of a load;
- :func:`print_rows`: a report table on standard output (``sdi etl runs``, ``sdi hazard …``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import psycopg
from rich.console import Console
from rich.table import Table

from sdi import runs
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
        run_id = runs.start(conn, job)
        try:
            result = work(conn, run_id)
        except Exception as exc:
            runs.fail(conn, run_id, f"{type(exc).__name__}: {exc}")
            raise
        runs.finish(conn, run_id, "succeeded", result.summary())
    return run_id, result


# reports go to standard output, wide enough not to wrap when piped to a file
report_console = Console(width=None if sys.stdout.isatty() else 200)


def print_rows(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """A table of ``rows`` under ``columns`` on standard output; None shows as empty."""
    table = Table(*columns)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    report_console.print(table)
