"""What the ETL runner calls at the end of a successful load, inside the load's transaction
(registered with its inputs by :func:`after_load_hooks`, an ``sdi.after_load`` entry point in
``pyproject.toml``, found by ``sdi/etl/hooks.py``).

A load of any table the warnings are derived from (readings, gauges, flood zones, and the
exposed buildings, parcels, lamps, pipes and cameras) recomputes them, so the published
warnings always match the committed warehouse: a failed recompute fails (and rolls back) the
load, and a run marked ``succeeded`` has its warnings up to date.
"""

from __future__ import annotations

import psycopg

from sdi.etl.hooks import AfterLoadHook
from sdi.hazard.model import INPUT_TABLES
from sdi.sql import one


def after_load_hooks() -> tuple[AfterLoadHook, ...]:
    """The flood warnings' hook: recompute after a load of any of their input tables."""
    return (AfterLoadHook("flood warnings", INPUT_TABLES, "sdi.hazard.hooks:after_load"),)


def after_load(conn: psycopg.Connection, table: str, run_id: int) -> str | None:
    """Recompute the warnings when ``table`` is one of their inputs; returns a summary line."""
    if table not in INPUT_TABLES:
        return None
    installed = one(conn.execute("SELECT to_regclass('hazard.warnings') IS NOT NULL"))[0]
    if not installed:  # a warehouse not yet upgraded to migration 0004
        return None
    from sdi.hazard.warnings import recompute

    return recompute(conn, run_id, trigger=table).summary()
