"""After a load of parcels or buildings only the derived rows of the communes it touched are
rebuilt (issue 14): one province's delivery leaves another province's rows as they were, and
what the scoped refresh leaves is what a whole rebuild makes."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import psycopg
import pytest
from psycopg import sql

from sdi.planning.refresh import SCOPE_OF_TABLE, refresh
from tests.support.etl_runs import modify, parcel_table
from tests.support.nation import deliver_parcels, nation_warehouse, with_provinces

# Derived from parcels; each row carries its commune.
PARCEL_LAYERS = (
    "planning.land_use_conflicts",
    "planning.hazard_parcels",
    "planning.commune_indicators",
)


@pytest.fixture(scope="module")
def nation(migrated: str, manifest: dict, settings) -> Iterator[tuple[str, psycopg.Connection]]:
    with nation_warehouse(
        migrated,
        settings,
        "sdi_test_scoped_refresh",
        jobs=("land_zoning", "hazard_flood_zones", "construction_buildings"),
    ) as warehouse:
        yield warehouse


def _rows(conn: psycopg.Connection, table: str, province: str) -> list[tuple]:
    """(id, commune, xmin) of the derived rows of a province's communes."""
    statement = sql.SQL(
        "SELECT d.id, d.commune_code, d.xmin::text FROM {} d "
        "JOIN admin.communes_current c USING (commune_code) WHERE c.province_code = %s "
        "ORDER BY 1, 2"
    ).format(sql.Identifier(*table.split(".")))
    return conn.execute(statement, (province,)).fetchall()


def _content(conn: psycopg.Connection, table: str) -> list[tuple]:
    """The rows but their run (a whole rebuild records its own); sums of floating-point
    numbers to 6 decimals (another order of addition changes the last digit)."""
    columns = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema || '.' || table_name = %s AND column_name NOT IN ('run_id', "
        "'refreshed_at') ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    listed = [
        sql.SQL("round({}::numeric, 6)::text" if kind == "double precision" else "{}::text").format(
            sql.Identifier(name)
        )
        for name, kind in columns
    ]
    statement = sql.SQL("SELECT {} FROM {} ORDER BY 1, 2").format(
        sql.SQL(", ").join(listed), sql.Identifier(*table.split("."))
    )
    return conn.execute(statement).fetchall()


def test_a_province_load_rewrites_only_its_communes_derived_rows(
    nation, settings, tmp_path
) -> None:
    url, conn = nation
    table = with_provinces(parcel_table(scale=0.05))
    a, b = table[table["province"] == "22"], table[table["province"] == "01"]
    deliver_parcels(settings, url, tmp_path / "a1", a)
    deliver_parcels(settings, url, tmp_path / "b1", b)
    before = {t: _rows(conn, t, "01") for t in PARCEL_LAYERS}
    before_a = {t: _rows(conn, t, "22") for t in PARCEL_LAYERS}
    assert all(before[t] for t in ("planning.commune_indicators", "planning.hazard_parcels"))
    assert all(before_a.values())

    a = a.reset_index(drop=True)
    result = deliver_parcels(
        settings, url, tmp_path / "a2", modify(a, np.arange(0, len(a), 5)).drop(index=[1, 2])
    )
    assert result.counts.updated > 0 and result.counts.retired == 2
    touched = result.counts.communes
    assert touched and touched <= set(a["MAXA"])

    # Province 01: every derived row still the very same tuple (not deleted and re-inserted)
    for t in PARCEL_LAYERS:
        assert _rows(conn, t, "01") == before[t], t
    # Province 22: the touched communes' indicators were rewritten, the others' not
    after_a = _rows(conn, "planning.commune_indicators", "22")
    rewritten = {
        c
        for (i, c, x), (_, _, y) in zip(
            before_a["planning.commune_indicators"], after_a, strict=True
        )
        if x != y
    }
    assert rewritten == set(touched)
    last = conn.execute(
        "SELECT trigger FROM planning.refreshes ORDER BY refresh_id DESC LIMIT 1"
    ).fetchone()
    assert last == ("land.parcels",)

    # What the scoped refreshes left is what a whole rebuild makes
    scoped = {t: _content(conn, t) for t in SCOPE_OF_TABLE}
    with conn.transaction():
        refresh(conn, trigger="manual")
    for t in SCOPE_OF_TABLE:
        assert _content(conn, t) == scoped[t], t
