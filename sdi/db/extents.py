"""Which provinces a box can touch in a table partitioned by province.

``etl.partition_extents`` holds, per partitioned table and province, a box around every
geometry ever stored there (grown by a statement trigger at every write, so it can only be
too large, never too small; migration 0012b, ``sdi/db/tables.py``). A spatial test alone
cannot prune partitions, the partition key is not the geometry: with these codes as values
the planner reads only those provinces' partitions. The API prunes a bbox query with it
(``sdi/api/provider.py``), the hazard exposure the partitions its areas can meet
(``sdi/hazard/warnings.py``); ``docs/national-warehouse.md``.
"""

from __future__ import annotations

import psycopg

from sdi.db.tables import PROVINCE_COLUMN
from sdi.sql import one

_PROVINCES_OF_BOX = (
    "SELECT coalesce(array_agg(province_code ORDER BY province_code), '{}') "
    "FROM etl.partition_extents "
    "WHERE relation = %(relation)s AND extent && ST_MakeEnvelope(%(w)s, %(s)s, %(e)s, %(n)s, 4326)"
)
_PARTITIONED = (
    "SELECT a.attname FROM pg_partitioned_table p "
    "JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0] "
    "WHERE p.partrelid = to_regclass(%s) AND p.partstrat = 'l' AND p.partnatts = 1"
)


def partitioned_by_province(conn: psycopg.Connection, table: str) -> bool:
    """Whether ``table`` (schema.name) is LIST-partitioned on province_code."""
    row = conn.execute(_PARTITIONED, (table,)).fetchone()
    return bool(row and row[0] == PROVINCE_COLUMN)


def provinces_of_box(
    conn: psycopg.Connection, table: str, west: float, south: float, east: float, north: float
) -> list[str]:
    """The provinces of partitioned ``table`` whose stored extent meets the lon/lat box."""
    cursor = conn.execute(
        _PROVINCES_OF_BOX, {"relation": table, "w": west, "s": south, "e": east, "n": north}
    )
    return list(one(cursor)[0])
