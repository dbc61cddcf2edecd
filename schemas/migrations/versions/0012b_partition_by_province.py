"""A national warehouse: the large feature tables partitioned by province (issue 14).

``land.parcels`` and ``construction.buildings`` (and their history: the closed versions live
in the same table) become LIST-partitioned on a new ``province_code`` column:

- one partition per province (``land.parcels_p22``), made on demand by
  ``etl.ensure_province_partition(table, code)`` — here for every province the communes layer
  knows, later by the ETL for each province a delivery brings — and a default partition
  (``land.parcels_default``) for a code that has none yet (its rows move out when it gets one);
- every row's province is its commune's (``admin.communes``), else the deployment's
  (``SDI_PROVINCE_CODE``, Quảng Ninh's 22 by default);
- the primary key becomes ``(version_id, province_code)`` and the unique key of the current
  versions ``(province_code, natural_key)``: PostgreSQL requires the partition key in every
  unique index of a partitioned table (and Citus its distribution column: docs/citus.md);
- ``etl.partition_extents`` holds, per table and province, a box around every geometry stored
  (a statement trigger grows it), from which the API knows the provinces a bbox can touch;
- ``etl.province_of(commune_code)`` gives a commune's province.

The rows are copied once (minutes at 10 M rows); the ``_current`` view, ``_as_of()``, the
GiST and B-tree indexes and the privileges are made again on the new table. A view someone
else made on these tables stops the upgrade with its name (it would not survive the swap).
Downgrade copies the rows back into plain tables and drops ``province_code``.

Revision ID: 0012b
Revises: 0012a
"""

from alembic import op

from sdi.db.tables import (
    drop_province_support_sql,
    partition_by_province_sql,
    province_support_sql,
    unpartition_sql,
)

revision = "0012b"
down_revision = "0012a"
branch_labels = None
depends_on = None

PARTITIONED = ("land.parcels", "construction.buildings")


def _fallback() -> str:
    from sdi.settings import get_settings

    return get_settings().province_code


def upgrade() -> None:
    for statement in province_support_sql():
        op.execute(statement)
    fallback = _fallback()
    for table in PARTITIONED:
        for statement in partition_by_province_sql(table, fallback):
            op.execute(statement)


def downgrade() -> None:
    for table in PARTITIONED:
        for statement in unpartition_sql(table):
            op.execute(statement)
    for statement in drop_province_support_sql():
        op.execute(statement)
