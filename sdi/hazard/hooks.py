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

# The disaster risk levels' inputs (sdi.hazard.risk.INPUT_TABLES, kept here too so that
# registering the hooks imports nothing heavy). River floods are read from the flood warnings:
# their hook comes first.
RISK_INPUT_TABLES = frozenset(
    {
        "hazard.rain_readings",
        "hazard.rain_gauges",
        "hazard.typhoon_track",
        "hazard.landslide_zones",
        "hazard.storm_surge_zones",
        "hazard.gauge_readings",
        "hazard.gauges",
        "hazard.flood_zones",
        "admin.communes",
        "construction.buildings",
        "land.parcels",
    }
)


def after_load_hooks() -> tuple[AfterLoadHook, ...]:
    """The flood warnings' hook, then the disaster risk levels': recompute after a load of
    any of their input tables."""
    return (
        AfterLoadHook("flood warnings", INPUT_TABLES, "sdi.hazard.hooks:after_load"),
        AfterLoadHook(
            "disaster risk levels", RISK_INPUT_TABLES, "sdi.hazard.hooks:after_load_risk"
        ),
    )


def after_load(conn: psycopg.Connection, table: str, run_id: int) -> str | None:
    """Recompute the warnings when ``table`` is one of their inputs; returns a summary line."""
    if table not in INPUT_TABLES:
        return None
    installed = one(conn.execute("SELECT to_regclass('hazard.warnings') IS NOT NULL"))[0]
    if not installed:  # a warehouse not yet upgraded to migration 0004
        return None
    from sdi.hazard.warnings import recompute

    return recompute(conn, run_id, trigger=table).summary()


def after_load_risk(conn: psycopg.Connection, table: str, run_id: int) -> str | None:
    """Recompute the disaster risk levels when ``table`` is one of their inputs."""
    if table not in RISK_INPUT_TABLES:
        return None
    from sdi.hazard import risk

    if not risk.installed(conn):  # a warehouse not yet upgraded to migration 0011
        return None
    return risk.recompute(conn, run_id, trigger=table).summary()
