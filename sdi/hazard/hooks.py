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
from psycopg import sql

import sdi.sql
from sdi.etl.hooks import AfterLoadHook
from sdi.hazard.model import INPUT_TABLES
from sdi.sql import one

PACKAGE = "sdi.hazard"

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


# Loads that change only what is exposed (not the levels): after one of them, a recompute can
# change nothing unless a touched commune meets an active warning's or level's area.
EXPOSED_TABLES = frozenset({"land.parcels", "construction.buildings"})


def after_load_hooks() -> tuple[AfterLoadHook, ...]:
    """The flood warnings' hook, then the disaster risk levels': recompute after a load of
    any of their input tables."""
    return (
        AfterLoadHook("flood warnings", INPUT_TABLES, "sdi.hazard.hooks:after_load", scoped=True),
        AfterLoadHook(
            "disaster risk levels",
            RISK_INPUT_TABLES,
            "sdi.hazard.hooks:after_load_risk",
            scoped=True,
        ),
    )


def _untouched(
    conn: psycopg.Connection, table: str, communes: frozenset[str] | None, active: str
) -> bool:
    """Whether a load of ``table`` that touched ``communes`` leaves the ``active`` areas
    (a ``_current`` view with a geometry) alone: no touched commune meets one of them. In a
    national warehouse, a province's delivery far from any warning skips the recompute."""
    if table not in EXPOSED_TABLES or communes is None:
        return False
    codes = sorted(communes)
    known, meets = one(
        conn.execute(
            sdi.sql.query(PACKAGE, "communes_meet_active").format(
                active=sql.Identifier(*active.split("."))
            ),
            (codes, codes),
        )
    )
    return known == len(codes) and not meets  # an unknown commune: recompute


def after_load(
    conn: psycopg.Connection,
    table: str,
    run_id: int,
    communes: frozenset[str] | None = None,
) -> str | None:
    """Recompute the warnings when ``table`` is one of their inputs; returns a summary line."""
    if table not in INPUT_TABLES:
        return None
    installed = one(conn.execute("SELECT to_regclass('hazard.warnings') IS NOT NULL"))[0]
    if not installed:  # a warehouse not yet upgraded to migration 0004
        return None
    if _untouched(conn, table, communes, "hazard.warnings_current"):
        return "warnings: unchanged (no active warning in the communes the load touched)"
    from sdi.hazard.warnings import recompute

    return recompute(conn, run_id, trigger=table).summary()


def after_load_risk(
    conn: psycopg.Connection,
    table: str,
    run_id: int,
    communes: frozenset[str] | None = None,
) -> str | None:
    """Recompute the disaster risk levels when ``table`` is one of their inputs."""
    if table not in RISK_INPUT_TABLES:
        return None
    from sdi.hazard import risk

    if not risk.installed(conn):  # a warehouse not yet upgraded to migration 0011
        return None
    if _untouched(conn, table, communes, "hazard.risk_levels_current"):
        risk.note_load(conn, table, communes)
        return "risk levels: unchanged (no active level in the communes the load touched)"
    return risk.recompute(conn, run_id, trigger=table, communes=communes).summary()
