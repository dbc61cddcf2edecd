"""Every job loads the sample deliveries of four cities correctly (real PostGIS)."""

from __future__ import annotations

import csv
from fnmatch import fnmatch

import numpy as np
import pyogrio
import pytest
import shapely
from pyproj import Transformer

from sdi.etl.codes import code_list
from sdi.etl.runner import run_job
from sdi.etl.spec import discover_jobs, load_job
from tests.conftest import TEST_DATA

CITIES = {"ha_long", "uong_bi", "cam_pha", "mong_cai"}
MOJIBAKE = "¶¹ÈÝ«"  # TCVN3 bytes read as latin-1 ("Qu¶ng", "H¹ Long", "CÈm", "BÝ", "U«ng")


def _expected_rows(manifest: dict, job) -> int:
    files = [f for f in manifest["files"] if fnmatch(f, job.source.path)]
    assert files, f"no sample file for {job.name}"
    if job.kind == "raster":
        return len(files)
    return sum(manifest["files"][f]["rows"] for f in files)


@pytest.mark.parametrize("name", sorted(discover_jobs()))
def test_job_loads_the_expected_row_count(
    name: str, loaded: dict, manifest: dict, db, settings
) -> None:
    job = load_job(discover_jobs(settings)[name], settings)
    result = loaded[name]
    assert result.status == "succeeded", result.message
    expected = _expected_rows(manifest, job)
    assert result.rows_read == expected
    assert result.rejected == 0
    if job.contributes_as:  # one of several sources of the table: see test_contributions.py
        count = db.execute(
            "SELECT count(*) FROM etl.contributions WHERE target = %s AND source = %s "
            "AND valid_to IS NULL",
            (job.table, job.contributes_as),
        ).fetchone()[0]
        assert count == expected
        return
    assert result.counts.added == expected
    current = "valid_to IS NULL" if job.mode != "append" else "TRUE"
    # a table shared by several jobs (hazard.rasters: one kind per job) holds other slices too
    slice_value = next((f.value for f in job.fields if f.name == job.slice_column), None)
    if slice_value is not None:
        current += f" AND {job.slice_column} = '{slice_value}'"
    count = db.execute(f"SELECT count(*) FROM {job.table} WHERE {current}").fetchone()[0]
    assert count == expected


@pytest.mark.parametrize(
    "table",
    [
        "land.parcels",
        "land.zoning",
        "construction.buildings",
        "construction.permits",
        "utility.street_lamps",
        "utility.wifi_hotspots",
        "utility.cameras",
        "utility.water_pipes",
        "utility.env_sensors",
        "hazard.flood_zones",
        "hazard.gauges",
    ],
)
def test_features_lie_in_all_four_cities_inside_their_commune(table: str, loaded, db) -> None:
    cities = db.execute(
        f"SELECT DISTINCT c.city FROM {table}_current f "
        "JOIN admin.communes_current c USING (commune_code)"
    ).fetchall()
    assert {c for (c,) in cities} == CITIES
    outside = db.execute(
        f"SELECT count(*) FROM {table}_current f JOIN admin.communes_current c "
        "USING (commune_code) WHERE NOT ST_Intersects(f.geom, c.geom)"
    ).fetchone()[0]
    assert outside == 0


def test_vietnamese_text_from_tcvn3_shapefiles_is_decoded(loaded, db) -> None:
    rows = db.execute(
        "SELECT address FROM land.parcels_current p JOIN admin.communes_current c "
        "USING (commune_code) WHERE c.city = 'ha_long' AND address LIKE %s LIMIT 5",
        ("%Phường%",),
    ).fetchall()
    assert rows, "no decoded Vietnamese address in Hạ Long"
    bad = db.execute(
        "SELECT count(*) FROM land.parcels_current WHERE address ~ %s OR owner_name ~ %s",
        (f"[{MOJIBAKE}]", f"[{MOJIBAKE}]"),
    ).fetchone()[0]
    assert bad == 0
    name = db.execute(
        "SELECT commune_name FROM admin.communes_current WHERE commune_code = '06688'"
    ).fetchone()[0]
    assert name == "Phường Hạ Long"


def test_land_use_codes_are_current_and_superseded_ones_mapped(loaded, db) -> None:
    land_use = code_list("land_use")
    codes = {
        c for (c,) in db.execute("SELECT DISTINCT unnest(land_use_codes) FROM land.parcels_current")
    }
    assert codes <= set(land_use.current)
    mapped = db.execute(
        "SELECT land_use_source, land_use_codes FROM land.parcels_current "
        "WHERE land_use_source = ANY(%s)",
        (list(land_use.superseded),),
    ).fetchall()
    assert mapped, "the samples carry superseded codes"
    for source, current in mapped:
        assert current == [land_use.superseded[source]]
    multi = db.execute(
        "SELECT count(*) FROM land.parcels_current WHERE cardinality(land_use_codes) > 1"
    ).fetchone()[0]
    assert multi > 0


def test_invalid_parcel_geometries_are_repaired_not_lost(loaded, manifest, db) -> None:
    invalid_keys = [
        f"{k['MAXA']}-{k['SOTO']}-{k['SOTHUA']}" for k in manifest["invalid_parcels_keys"]
    ]
    assert loaded["land_parcels"].repaired == len(invalid_keys) > 0
    valid = db.execute(
        "SELECT bool_and(ST_IsValid(geom)), count(*) FROM land.parcels_current "
        "WHERE natural_key = ANY(%s)",
        (invalid_keys,),
    ).fetchone()
    assert valid == (True, len(invalid_keys))


def test_legal_area_is_computed_in_vn2000(loaded, settings, db) -> None:
    path = sorted(settings.source_dir.glob("land/parcels_*.shp"))[0]
    frame = pyogrio.read_dataframe(path, max_features=50)
    frame = frame[shapely.is_valid(frame.geometry.values)]
    keys = [f"{r.MAXA}-{r.SOTO}-{r.SOTHUA}" for r in frame.itertuples()]
    stored = dict(
        db.execute(
            "SELECT natural_key, area_m2 FROM land.parcels_current WHERE natural_key = ANY(%s)",
            (keys,),
        ).fetchall()
    )
    for key, geometry in zip(keys, frame.geometry, strict=True):
        assert stored[key] == pytest.approx(geometry.area, abs=0.01)


def test_reloading_an_unchanged_delivery_changes_nothing(loaded, settings) -> None:
    job = load_job(discover_jobs(settings)["land_parcels"], settings)
    skipped = run_job(job, settings.database_url, settings=settings)
    assert skipped.status == "skipped"
    forced = run_job(job, settings.database_url, settings=settings, force=True)
    assert forced.changes == 0
    assert forced.counts.unchanged == loaded["land_parcels"].counts.added


CRS_VECTORS = list(
    csv.DictReader((TEST_DATA / "crs-test-vectors" / "quang_ninh_crs_test_vectors.csv").open())
)


@pytest.mark.parametrize("row", CRS_VECTORS, ids=[r["name"] for r in CRS_VECTORS])
def test_crs_test_vectors_are_reproduced_by_pyproj_and_postgis(row: dict, db) -> None:
    lon, lat = float(row["wgs84_lon"]), float(row["wgs84_lat"])
    expected = {
        5899: (float(row["epsg5899_E_tm3_107_45"]), float(row["epsg5899_N"])),
        3405: (float(row["epsg3405_E_utm48n"]), float(row["epsg3405_N"])),
    }
    for srid, (east, north) in expected.items():
        x, y = Transformer.from_crs(4326, srid, always_xy=True).transform(lon, lat)
        assert np.hypot(x - east, y - north) < 0.01
        x, y = db.execute(
            "SELECT ST_X(p), ST_Y(p) "
            "FROM ST_Transform(ST_SetSRID(ST_MakePoint(%s, %s), 4326), %s) p",
            (lon, lat, srid),
        ).fetchone()
        assert np.hypot(x - east, y - north) < 0.01
    vn_lon, vn_lat = Transformer.from_crs(4326, 4756, always_xy=True).transform(lon, lat)
    assert abs(vn_lon - float(row["vn2000_lon_epsg4756"])) < 1e-7
    assert abs(vn_lat - float(row["vn2000_lat_epsg4756"])) < 1e-7
