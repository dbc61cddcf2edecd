"""Every feature table the ETL loads marks the features whose geometry it repaired (issue 12).

``geometry_repaired boolean NOT NULL DEFAULT false``: true when the delivered geometry was
invalid and ``make_valid`` repaired it (keeping its dimension); published as a property of the
layers, so a user of the map sees which outlines are the department's and which the ETL's.
The DDL is ``sdi.db.tables.repaired_flag_sql``, the function declared tables get it from too
(``create_feature_table``). Adding a column with a constant default rewrites no table.

Revision ID: 0012a
Revises: 0011
"""

from alembic import op

from sdi.db.tables import drop_repaired_flag_sql, repaired_flag_sql

revision = "0012a"
down_revision = "0011"
branch_labels = None
depends_on = None

# The built-in feature tables of 0001, 0006 and 0011 (those with 0005's source_hash): the
# targets of the ETL jobs in etl/jobs/. Time series and derived tables have no repairs.
TABLES = (
    "admin.communes",
    "land.parcels",
    "land.zoning",
    "construction.buildings",
    "construction.permits",
    "utility.street_lamps",
    "utility.water_pipes",
    "utility.cameras",
    "utility.wifi_hotspots",
    "utility.env_sensors",
    "hazard.gauges",
    "hazard.flood_zones",
    "hazard.landslide_zones",
    "hazard.storm_surge_zones",
    "hazard.rain_gauges",
    "hazard.rasters",
)


def upgrade() -> None:
    for qualified in TABLES:
        for statement in repaired_flag_sql(qualified):
            op.execute(statement)


def downgrade() -> None:
    for qualified in TABLES:
        for statement in drop_repaired_flag_sql(qualified):
            op.execute(statement)
