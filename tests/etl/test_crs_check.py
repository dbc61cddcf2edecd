"""The file's own CRS against ``source.srid`` (``sdi/etl/readers/crs.py``), gazetteer checks,
natural keys by position, unique geometries and the repaired count (issue 12, item 4)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import shapely

from sdi.errors import ConfigError, SourceError
from sdi.etl.gazetteer import gazetteer
from sdi.etl.readers.crs import check
from tests.support import deliveries as d

# An ESRI-style .prj of VN-2000 / TM-3 107°45' as Vietnamese GIS software writes it: no
# EPSG code, a TOWGS84 of its own. It must be taken as 5899.
ESRI_PRJ_5899 = (
    'PROJCS["VN_2000_KT_107_45_mui_3",GEOGCS["GCS_VN_2000",DATUM["D_Vietnam_2000",'
    'SPHEROID["WGS_1984",6378137.0,298.257223563],'
    "TOWGS84[-191.90441429,-39.30318279,-111.45032835,-0.00928836,0.01975479,-0.00427372,"
    '0.252906278]],PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]],'
    'PROJECTION["Transverse_Mercator"],PARAMETER["False_Easting",500000.0],'
    'PARAMETER["False_Northing",0.0],PARAMETER["Central_Meridian",107.75],'
    'PARAMETER["Scale_Factor",0.9999],PARAMETER["Latitude_Of_Origin",0.0],UNIT["Meter",1.0]]'
)


def _shapefile(tmp_path: Path, prj: str | None) -> Path:
    path = d.write(d.lamps(), tmp_path / "lamps.shp")
    if prj is None:
        path.with_suffix(".prj").unlink()
    else:
        path.with_suffix(".prj").write_text(prj)
    return path


def test_an_esri_prj_without_code_agrees_with_its_epsg(tmp_path: Path) -> None:
    found = check(_shapefile(tmp_path, ESRI_PRJ_5899), None, 5899, None)
    assert found.agrees is True and found.offset_m < 1


def test_a_neighbouring_zone_is_refused_naming_both(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as error:
        check(_shapefile(tmp_path, ESRI_PRJ_5899), None, 5898, None)
    message = str(error.value)
    assert "lamps.shp" in message and "VN_2000_KT_107_45" in message and "5898" in message
    assert "26.0 km" in message and "srid_override" in message


def test_override_accepts_and_says_why(tmp_path: Path) -> None:
    found = check(_shapefile(tmp_path, ESRI_PRJ_5899), None, 5898, "checked with the office")
    assert found.agrees is False and "checked with the office" in found.note


def test_a_file_without_crs_is_taken_as_declared(tmp_path: Path) -> None:
    found = check(_shapefile(tmp_path, None), None, 5899, None)
    assert found.agrees is None and found.declared is None


def test_gml_srsname_is_compared(tmp_path: Path) -> None:
    gml = d.write(d.lamps(), tmp_path / "lamps.gml", driver="GML")
    assert check(gml, None, 5899, None).agrees is True
    with pytest.raises(SourceError, match="EPSG:5899"):
        check(gml, None, 3405, None)


def test_unknown_epsg_is_a_configuration_error() -> None:
    from sdi.etl.readers.crs import spec_crs

    with pytest.raises(ConfigError, match="990099"):
        spec_crs(990099)


def test_gazetteer_suggests_near_misses() -> None:
    provinces = gazetteer("province_name")
    assert "Cần Thơ?" in provinces.explain("Cần Thơn")
    assert "Tỉnh Quảng Ninh" in provinces and "quảng  ninh" in provinces
    communes = gazetteer("commune_name")
    assert "Hồng Gai" in communes and "Phường Hồng Gai" in communes
    assert gazetteer("commune_code").explain("06686").startswith("'06686' is not a known")


# -- through real runs -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def warehouse(migrated: str, settings):
    with d.warehouse(migrated, settings, "sdi_test_crs_check") as url:
        yield url


def _run(url: str, folder: Path, spec: str, name: str = "lamps"):
    (folder / "jobs").mkdir(exist_ok=True)
    (folder / "jobs" / f"{name}.yml").write_text(spec, encoding="utf-8")
    env = {
        "SDI_DATABASE_URL": url,
        "SDI_JOBS_DIR": str(folder / "jobs"),
        "SDI_SOURCE_DIR": str(folder / "inbox"),
        "SDI_STATE_DIR": str(folder / "state"),
    }
    return d.sdi("etl", "run", name, "--force", **env)


def test_gazetteer_warn_keeps_the_row_and_reports_it(warehouse: str, tmp_path: Path) -> None:
    frame = d.lamps(5, prefix="GZ")
    frame["province"] = ["Quảng Ninh", "Quảng Ninh", "Cần Thơn", "Tỉnh Quảng Ninh", "Quang Ninh"]
    d.write(frame, tmp_path / "inbox" / "utility" / "lamps.gpkg", layer="lamps")
    spec = d.lamp_spec(
        "utility/lamps.gpkg",
        fields_extra="  cabinet_id: {from: province, gazetteer: province_name, on_unknown: warn}\n",
    )
    result = _run(warehouse, tmp_path, spec)
    assert result.exit_code == 0, result.output
    with psycopg.connect(warehouse) as conn:
        warnings, added = conn.execute(
            "SELECT options->'warnings', added FROM etl.runs ORDER BY run_id DESC LIMIT 1"
        ).fetchone()
    assert added == 5
    assert [(w["row"], w["key"]) for w in warnings] == [(3, "GZ002"), (5, "GZ004")]
    assert "did you mean 'Quảng Ninh?'" in warnings[1]["warning"]


def test_position_key_and_unique_geometry(warehouse: str, tmp_path: Path) -> None:
    """A file with no id keyed by position; unique_geometry on a clean file loads it all."""
    frame = d.lamps(6).drop(columns=["lamp_id"])
    frame["ma_den"] = [f"P{i}" for i in range(6)]
    d.write(frame, tmp_path / "inbox" / "utility" / "lamps.gpkg", layer="lamps")
    spec = d.lamp_spec(
        "utility/lamps.gpkg", key="pos-{#}", validation_extra="\n  unique_geometry: true"
    ).replace("from: lamp_id", "from: ma_den")
    result = _run(warehouse, tmp_path, spec)
    assert result.exit_code == 0, result.output
    with psycopg.connect(warehouse) as conn:
        keys = conn.execute(
            "SELECT natural_key, lamp_code FROM utility.street_lamps WHERE valid_to IS NULL "
            "ORDER BY natural_key"
        ).fetchall()
    assert keys == [(f"pos-{i + 1}", f"P{i}") for i in range(6)]


def test_repaired_count_excludes_rejected_rows(warehouse: str, tmp_path: Path) -> None:
    """Two bow-tie parcels: one inside the province (repaired), one far outside it (rejected:
    not also counted as repaired)."""
    from tests.support import etl_formats as fx

    parcels = fx.parcels(4, prefix="REP")
    bowtie = [(0, 0), (20, 25), (20, 0), (0, 25), (0, 0)]
    x0, y0 = parcels[0].geometry.exterior.coords[0]
    inside = shapely.Polygon([(x0 + x, y0 + y) for x, y in bowtie])
    far = shapely.Polygon([(x0 - 400_000 + x, y0 + y) for x, y in bowtie])
    import geopandas as gpd

    frame = gpd.GeoDataFrame(
        {
            "MAXA": ["06685"] * 4,
            "SOTO": [12] * 4,
            "SOTHUA": [p.parcel_no for p in parcels],
            "KHLOAIDAT": ["ODT"] * 4,
        },
        geometry=[inside, far, parcels[2].geometry, parcels[3].geometry],
        crs="EPSG:5899",
    )
    d.write(frame, tmp_path / "inbox" / "land" / "parcels.gpkg", layer="parcels")
    spec = (
        "title: Parcels with a bow tie\nsource:\n  path: land/parcels.gpkg\n  srid: 5899\n"
        "target:\n  table: land.parcels\n"
        'natural_key: "REP-{MAXA}-{SOTO}-{SOTHUA}"\n'
        "fields:\n  commune_code: {from: MAXA, required: true}\n"
        "  sheet_no: {from: SOTO, type: integer}\n  parcel_no: {from: SOTHUA, type: integer}\n"
        '  land_use_codes: {from: KHLOAIDAT, type: "text[]", split: "+", codes: land_use}\n'
        "validation:\n  max_reject_ratio: 0.5\n"
    )
    result = _run(warehouse, tmp_path, spec, name="parcels")
    assert result.exit_code == 0, result.output
    with psycopg.connect(warehouse) as conn:
        repaired, rejected, repairs = conn.execute(
            "SELECT repaired, rejected, options->'repairs' FROM etl.runs "
            "WHERE job = 'parcels' ORDER BY run_id DESC LIMIT 1"
        ).fetchone()
        marked = conn.execute(
            "SELECT natural_key, geometry_repaired FROM land.parcels WHERE valid_to IS NULL "
            "AND natural_key LIKE 'REP-%%' ORDER BY parcel_no"
        ).fetchall()
    assert (repaired, rejected) == (1, 1)
    assert [m for _, m in marked] == [True, False, False]
    assert [r["row"] for r in repairs] == [1] and "Self-intersection" in repairs[0]["why"]
