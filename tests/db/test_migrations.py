"""The warehouse is created by migrations; upgrading twice is a no-op."""

from __future__ import annotations

import psycopg

from sdi.db.migrate import head_revision, upgrade
from sdi.settings import Settings

SCHEMA_SNAPSHOT = """
SELECT table_schema, table_name, column_name, data_type, is_nullable
FROM information_schema.columns
WHERE table_schema IN ('admin', 'land', 'construction', 'utility', 'hazard', 'ops', 'etl')
ORDER BY 1, 2, ordinal_position
"""


def test_upgrade_twice_is_a_no_op(migrated: str, settings: Settings) -> None:
    with psycopg.connect(migrated) as conn:
        before = conn.execute(SCHEMA_SNAPSHOT).fetchall()
    first, second = upgrade(migrated, settings)
    assert first == second == head_revision(settings)
    with psycopg.connect(migrated) as conn:
        assert conn.execute(SCHEMA_SNAPSHOT).fetchall() == before


# Rebuilt whole by each risk recompute from versioned tables (like the planning schema's):
# no history of their own, so no bookkeeping columns.
DERIVED_SNAPSHOTS = {"hazard.commune_rainfall", "hazard.evacuation_list"}


def test_every_feature_table_has_the_bookkeeping_columns_and_a_gist_index(db) -> None:
    tables = db.execute(
        "SELECT f_table_schema, f_table_name, type, srid FROM geometry_columns "
        "WHERE f_table_schema IN ('admin','land','construction','utility','hazard') "
        "AND f_table_name NOT LIKE '%%_current'"
    ).fetchall()
    assert len(tables) >= 13
    for schema, table, geometry_type, srid in tables:
        if f"{schema}.{table}" in DERIVED_SNAPSHOTS:
            continue
        assert srid == 4326 and geometry_type != "GEOMETRY", (schema, table)
        columns = {
            r[0]
            for r in db.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = %s",
                (schema, table),
            )
        }
        assert {
            "id",
            "natural_key",
            "commune_code",
            "admin_vintage",
            "run_id",
            "valid_from",
            "valid_to",
            "geom",
        } <= columns, table
        gist = db.execute(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = %s AND tablename = %s "
            "AND indexdef ILIKE '%%USING gist (geom)%%'",
            (schema, table),
        ).fetchone()[0]
        assert gist == 1, table
