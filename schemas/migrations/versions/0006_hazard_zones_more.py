"""Landslide susceptibility and storm-surge zones (issue 5).

Two hazard feature tables with the conventions of every feature table: 0001's layout (stable
``id``, ``version_id``, ``natural_key``, ``commune_code`` + vintage, ``run_id``,
``valid_from``/``valid_to``, ``row_hash``, typed SRID 4326 geometry with a GiST index, a
``_current`` view), 0002's ``<table>_as_of()`` and 0005's ``source_hash`` with no per-row
foreign key on ``run_id``. The DDL is sdi.db.tables' (0001's function), so the tables cannot
drift apart.

- ``hazard.landslide_zones``: the geology institute's susceptibility map; one class per zone
  (``low`` < ``moderate`` < ``high`` < ``very_high``, ranked 1-4 for sorting and styling), its
  susceptibility index and mean slope, and whether it lies in a mining area.
- ``hazard.storm_surge_zones``: land flooded by the storm surge of a typhoon scenario (level on
  the Beaufort scale, e.g. '12-13'), with the surge height and its class.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

from sdi.db.tables import create_feature_table_sql, drop_feature_table_sql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


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
    for qualified, geometry_type, columns in TABLES:
        for statement in create_feature_table_sql(qualified, geometry_type, columns):
            op.execute(statement)


def downgrade() -> None:
    for qualified, _geometry_type, _columns in reversed(TABLES):
        for statement in drop_feature_table_sql(qualified):
            op.execute(statement)
