"""Repaired rows are marked in the published layer (issue 12, item 4): every feature table the
ETL loads has ``geometry_repaired`` (migration 0012a), true where ``make_valid`` repaired the
delivered geometry, false elsewhere, served as a property of the layer."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import shapely

from sdi.db.tables import REPAIRED_COLUMN
from tests.support import deliveries as d

SHEET = 9912  # a map sheet of this test's own: the slice it replaces, nothing else


def _frame(parcels: list, geometries: list):
    import geopandas as gpd

    return gpd.GeoDataFrame(
        {
            "MAXA": ["06685"] * len(parcels),
            "SOTO": [SHEET] * len(parcels),
            "SOTHUA": [p.parcel_no for p in parcels],
            "KHLOAIDAT": ["ODT"] * len(parcels),
        },
        geometry=geometries,
        crs="EPSG:5899",
    )


SPEC = (
    "title: Parcels of one sheet, one outline a bow tie\n"
    "source:\n  path: land/parcels_repair.gpkg\n  srid: 5899\n"
    "target:\n  table: land.parcels\n  mode: replace_slice\n  slice: sheet_no\n"
    'natural_key: "RHTTP-{MAXA}-{SOTO}-{SOTHUA}"\n'
    "fields:\n  commune_code: {from: MAXA, required: true}\n"
    "  sheet_no: {from: SOTO, type: integer}\n  parcel_no: {from: SOTHUA, type: integer}\n"
    '  land_use_codes: {from: KHLOAIDAT, type: "text[]", split: "+", codes: land_use}\n'
    "validation:\n  max_reject_ratio: 0.5\n"
)


def test_every_etl_feature_table_has_the_flag(db: psycopg.Connection) -> None:
    from importlib.util import module_from_spec, spec_from_file_location

    from sdi.settings import PROJECT_DIR

    path = PROJECT_DIR / "schemas/migrations/versions/0012a_geometry_repaired.py"
    spec = spec_from_file_location("m0012a", path)
    assert spec is not None and spec.loader is not None
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    # every table with the feature layout (0005's source_hash): 0012a's and declared ones
    feature_tables = {
        f"{s}.{t}"
        for s, t in db.execute(
            "SELECT c.table_schema, c.table_name FROM information_schema.columns c "
            "JOIN information_schema.tables USING (table_schema, table_name) "
            "WHERE c.column_name = 'source_hash' AND table_type = 'BASE TABLE' "
            # a province's partition (0012b) is its parent's rows: the parent has the view
            "AND NOT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = "
            "format('%I.%I', c.table_schema, c.table_name)::regclass)"
        )
    }
    assert set(module.TABLES) <= feature_tables
    for qualified in sorted(feature_tables):  # declared tables too (create_feature_table)
        schema, table = qualified.split(".")
        for name in (table, f"{table}_current"):
            row = db.execute(
                "SELECT data_type, is_nullable, column_default FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = %s AND column_name = %s",
                (schema, name, REPAIRED_COLUMN),
            ).fetchone()
            assert row is not None, f"{schema}.{name} has no {REPAIRED_COLUMN}"
            assert row[0] == "boolean"
            if name == table:
                assert row[1:] == ("NO", "false")


def test_a_repaired_polygon_is_marked_over_http(
    api, migrated: str, settings, tmp_path: Path
) -> None:
    """A self-intersecting parcel delivered into the built-in land.parcels: the feature read
    from the served layer says geometry_repaired=true, the others false."""
    from tests.support import etl_formats as fx

    parcels = fx.parcels(3, prefix="RHTTP")
    x0, y0 = parcels[0].geometry.exterior.coords[0]
    bowtie = shapely.Polygon(
        [(x0 + x, y0 + y) for x, y in [(0, 0), (20, 25), (20, 0), (0, 25), (0, 0)]]
    )
    assert not bowtie.is_valid
    geometries = [bowtie, parcels[1].geometry, parcels[2].geometry]
    d.write(_frame(parcels, geometries), tmp_path / "inbox" / "land" / "parcels_repair.gpkg")
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "parcels_repair.yml").write_text(SPEC, encoding="utf-8")
    env = {
        "SDI_DATABASE_URL": migrated,
        "SDI_JOBS_DIR": str(tmp_path / "jobs"),
        "SDI_SOURCE_DIR": str(tmp_path / "inbox"),
        "SDI_STATE_DIR": str(tmp_path / "state"),
    }
    with psycopg.connect(migrated) as conn:
        (before,) = conn.execute(
            "SELECT coalesce(max(refresh_id), 0) FROM planning.refreshes"
        ).fetchone()
    try:
        result = d.sdi("etl", "run", "parcels_repair", **env)
        assert result.exit_code == 0, result.output
        assert "1 repaired" in result.output
        response = api.get(
            "/collections/parcels/items",
            params={"sheet_no": SHEET, "f": "json", "limit": 10},
        )
        assert response.status_code == 200, response.text
        served = {
            f["properties"]["parcel_no"]: f["properties"][REPAIRED_COLUMN]
            for f in response.json()["features"]
        }
        assert served == {1: True, 2: False, 3: False}
    finally:
        # the session's warehouse is shared: take this sheet out again and rebuild the derived
        # tables the run refreshed, forgetting those refreshes (tests/planning read the last
        # refresh of each as the sample load's); the run stays: the warning recompute it
        # triggered refers to it
        from sdi.planning.refresh import refresh

        with psycopg.connect(migrated, autocommit=True) as conn:
            conn.execute("DELETE FROM land.parcels WHERE sheet_no = %s", (SHEET,))
            refresh(conn, trigger="test cleanup")
            conn.execute("DELETE FROM planning.refreshes WHERE refresh_id > %s", (before,))


@pytest.mark.parametrize("column", [REPAIRED_COLUMN])
def test_a_declared_table_may_not_declare_the_flag(column: str) -> None:
    from sdi.db.tables import Column
    from sdi.errors import ConfigError

    with pytest.raises(ConfigError, match="every feature table has it already"):
        Column(column, "boolean")
