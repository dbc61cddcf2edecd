"""Landslide susceptibility and storm-surge zones (issue 5).

Two hazard feature tables with the conventions of every feature table: 0001's layout (stable
``id``, ``version_id``, ``natural_key``, ``commune_code`` + vintage, ``run_id``,
``valid_from``/``valid_to``, ``row_hash``, typed SRID 4326 geometry with a GiST index, a
``_current`` view), 0002's ``<table>_as_of()`` and 0005's ``source_hash`` with no per-row
foreign key on ``run_id``. The DDL is 0001's own function, so the tables cannot drift apart.

- ``hazard.landslide_zones``: the geology institute's susceptibility map; one class per zone
  (``low`` < ``moderate`` < ``high`` < ``very_high``, ranked 1-4 for sorting and styling), its
  susceptibility index and mean slope, and whether it lies in a mining area.
- ``hazard.storm_surge_zones``: land flooded by the storm surge of a typhoon scenario (level on
  the Beaufort scale, e.g. '12-13'), with the surge height and its class.

Revision ID: 0006
Revises: 0005
"""

import importlib.util
from pathlib import Path

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _warehouse_migration():
    spec = importlib.util.spec_from_file_location(
        "sdi_migration_0001", Path(__file__).with_name("0001_warehouse.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TABLES: list[tuple[str, str, str]] = [
    (
        "hazard.landslide_zones",
        "MultiPolygon",
        """zone_code text NOT NULL,
        susceptibility text NOT NULL
            CHECK (susceptibility IN ('low', 'moderate', 'high', 'very_high')),
        susceptibility_rank smallint CHECK (susceptibility_rank BETWEEN 1 AND 4),
        susceptibility_index double precision,
        mean_slope_deg double precision,
        mining_area boolean,
        area_m2 double precision""",
    ),
    (
        "hazard.storm_surge_zones",
        "MultiPolygon",
        """zone_code text NOT NULL,
        name text,
        typhoon_level text NOT NULL,
        surge_height_m double precision NOT NULL,
        surge_class text,
        area_m2 double precision""",
    ),
]


def upgrade() -> None:
    feature_table_sql = _warehouse_migration()._feature_table_sql
    for qualified, geometry_type, columns in TABLES:
        schema, table = qualified.split(".")
        op.execute(f"CREATE SEQUENCE {schema}.{table}_id_seq")
        op.execute(feature_table_sql(qualified, geometry_type, columns))
        op.execute(f"ALTER TABLE {qualified} ADD COLUMN source_hash bigint")
        op.execute(f"ALTER TABLE {qualified} DROP CONSTRAINT IF EXISTS {table}_run_id_fkey")
        op.execute(
            f"""
            CREATE FUNCTION {qualified}_as_of(at timestamptz) RETURNS SETOF {qualified}
            LANGUAGE sql STABLE AS $$
                SELECT * FROM {qualified}
                WHERE valid_from <= at AND (valid_to IS NULL OR valid_to > at)
            $$;
            COMMENT ON FUNCTION {qualified}_as_of(timestamptz) IS
                'The versions of {qualified} that were current at the given instant';
            """
        )


def downgrade() -> None:
    for qualified, _geometry_type, _columns in reversed(TABLES):
        op.execute(f"DROP FUNCTION IF EXISTS {qualified}_as_of(timestamptz)")
        op.execute(f"DROP VIEW IF EXISTS {qualified}_current")
        op.execute(f"DROP TABLE IF EXISTS {qualified}")
        op.execute(f"DROP SEQUENCE IF EXISTS {qualified}_id_seq")
