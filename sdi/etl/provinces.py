"""Loads into tables partitioned by province (issue 14, ``docs/citus.md``).

A target with a ``province_code`` LIST partition key (``land.parcels``,
``construction.buildings``, declared tables with ``target.partition_by: province``) gets each
row's province from its commune (``admin.communes``: commune codes are national), or the
deployment's (``SDI_PROVINCE_CODE``) for a commune the layer does not know, unless the job
delivers ``province_code`` itself. The partitions of those provinces are made before the
rows arrive, and the merge retires only the missing features of the provinces the delivery
brings: a province delivers its part alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import psycopg

from sdi.db.extents import partitioned_by_province
from sdi.db.tables import PROVINCE_COLUMN
from sdi.etl.stage import TargetTable
from sdi.sql import one


def partition_key(conn: psycopg.Connection, target: TargetTable) -> str | None:
    """The target's partition column when it is LIST-partitioned on province_code."""
    partitioned = partitioned_by_province(conn, f"{target.schema}.{target.name}")
    return PROVINCE_COLUMN if partitioned else None


def ensure_partitions(conn: psycopg.Connection, target: TargetTable, codes: set[str]) -> None:
    """Make the partition of each province code that has none (its rows that waited in the
    default partition move into it)."""
    table = f"{target.schema}.{target.name}"
    for code in sorted(c for c in codes if c):
        conn.execute("SELECT etl.ensure_province_partition(%s::regclass, %s)", (table, code))


class Provinces:
    """Commune code → province code, read once per run."""

    def __init__(self, conn: psycopg.Connection, fallback: str) -> None:
        rows = conn.execute(
            "SELECT DISTINCT ON (commune_code) commune_code, province_code FROM admin.communes "
            "WHERE valid_to IS NULL AND province_code IS NOT NULL "
            "ORDER BY commune_code, admin_vintage = '2025' DESC"
        ).fetchall()
        self.by_commune: dict[str, str] = dict(rows)
        self.fallback = fallback
        self.seen: set[str] = set()  # every province of the delivery (also unchanged rows)

    @property
    def codes(self) -> set[str]:
        """Every province a row may be given: the partitions to have before the COPY."""
        return {*self.by_commune.values(), self.fallback}

    def lookup(self, communes: pd.Series | None, length: int) -> np.ndarray:
        """The province of each commune code (the fallback for a code not known)."""
        if communes is None:
            return np.full(length, self.fallback, dtype=object)
        # as Python objects: the column may be Arrow-backed, whose map() keeps Arrow types
        codes = pd.Series(communes.to_numpy(dtype=object, na_value=None))
        out = codes.map(self.by_commune).to_numpy(dtype=object)
        out[pd.isna(out)] = self.fallback
        return out

    def of(self, communes: pd.Series | None, length: int) -> np.ndarray:
        """:meth:`lookup`, and the provinces are remembered as the delivery's."""
        out = self.lookup(communes, length)
        self.seen.update(out.tolist())
        return out


def delivered_provinces(conn: psycopg.Connection, stage: str, seen: set[str] | None) -> list[str]:
    """The provinces of a delivery: those of its staged rows and those seen while reading
    (rows delivered unchanged are not staged)."""
    from psycopg import sql

    cursor = conn.execute(
        sql.SQL("SELECT coalesce(array_agg(DISTINCT {}), '{{}}') FROM {}").format(
            sql.Identifier(PROVINCE_COLUMN), sql.Identifier(stage)
        )
    )
    return sorted({*one(cursor)[0], *(seen or set())})
