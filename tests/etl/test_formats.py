"""Every delivery format loads end to end through the real runner into a real warehouse.

Delivery files are built at test time with GDAL from small in-memory data
(``tests/support/etl_formats.py``); each test writes a job spec into ``tmp_path``, runs it
with ``run_job`` and checks decoded Vietnamese text, coordinates (0.01 m in VN-2000, 1e-7° in
WGS 84) and row counts.

The format tests use a warehouse database of their own: a ``history`` job retires every
current feature its delivery lacks, table-wide, so loading fixtures into the session's
database would retire the sample data other tests count.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import psycopg
import pytest
import shapely
from psycopg import sql

from sdi.errors import SourceError
from sdi.etl import readers
from sdi.etl.readers import read_batches
from sdi.etl.runner import RunResult, run_job
from sdi.etl.spec import SourceSpec, load_job
from tests.support import etl_formats as fx

FORMATS_DB = "sdi_test_formats"
VN2000_TOLERANCE = 0.01  # metres
LONLAT_TOLERANCE = 1e-7  # degrees

needs_ogr2ogr = pytest.mark.skipif(
    fx.ogr2ogr() is None, reason="GDAL's command-line tools (ogr2ogr) are not installed"
)


# -- a warehouse of our own ----------------------------------------------------------------


@pytest.fixture(scope="module")
def warehouse(migrated: str, settings) -> Iterator[str]:
    """A database beside the session's, with the same credentials, migrated to head."""
    from sdi.db.migrate import upgrade

    url = urlunsplit(urlsplit(migrated)._replace(path=f"/{FORMATS_DB}"))
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(FORMATS_DB))
    with psycopg.connect(migrated, autocommit=True) as conn:
        conn.execute(drop)
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(FORMATS_DB)))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    upgrade(url, settings)
    yield url
    with psycopg.connect(migrated, autocommit=True) as conn:
        conn.execute(drop)


@pytest.fixture()
def wdb(warehouse: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(warehouse, autocommit=True) as conn:
        yield conn


def run(tmp_path: Path, settings, warehouse: str, name: str, spec: str) -> RunResult:
    """Write ``spec`` as job ``name`` and run it against the format tests' warehouse."""
    jobs = tmp_path / "jobs"
    jobs.mkdir(exist_ok=True)
    path = jobs / f"{name}.yml"
    path.write_text(spec, encoding="utf-8")
    local = settings.model_copy(update={"source_dir": tmp_path})
    return run_job(load_job(path, local), warehouse, settings=local, force=True)


def first_batch(path: Path, **source):
    return next(read_batches(path, SourceSpec(path=str(path), **source)))


def assert_run(result: RunResult, rows: int) -> None:
    assert result.status == "succeeded", result.message
    assert result.rows_read == rows
    assert result.rejected == 0
    assert result.counts.added == rows


def current_rows(conn, table: str, prefix: str, columns: list[str], srid: int) -> dict:
    """natural key → (column values…, geometry in ``srid``) of the current features."""
    query = sql.SQL(
        "SELECT natural_key, {columns}, ST_AsBinary(ST_Transform(geom, {srid})) "
        "FROM {table} WHERE valid_to IS NULL AND natural_key LIKE {prefix}"
    ).format(
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        srid=sql.Literal(srid),
        table=sql.Identifier(*table.split(".")),
        prefix=sql.Literal(prefix + "%"),
    )
    return {
        row[0]: (*row[1:-1], shapely.from_wkb(bytes(row[-1])))
        for row in conn.execute(query).fetchall()
    }


def assert_same_geometry(got, expected, tolerance: float) -> None:
    distance = shapely.hausdorff_distance(got, expected)
    assert distance <= tolerance, f"{got.wkt[:80]} is {distance} off {expected.wkt[:80]}"


# -- land parcels: Shapefile, MapInfo, DGN ----------------------------------------------------

PARCEL_FIELDS = """
fields:
  commune_code: {{from: {maxa}, required: true}}
  sheet_no: {{from: {soto}, type: integer, required: true}}
  parcel_no: {{from: {sothua}, type: integer, required: true}}
  land_use_codes: {{from: {loai}, type: "text[]", split: "+", codes: land_use, required: true}}
  land_use_primary: {{from: {loai}, split: "+", codes: land_use}}
  area_m2: {{derive: area}}
  owner_name: {chu}
  address: {diachi}
"""


def parcel_spec(path: str, prefix: str, encoding: str, columns: dict[str, str]) -> str:
    key = f"{prefix}-{{{columns['maxa']}}}-{{{columns['soto']}}}-{{{columns['sothua']}}}"
    return (
        f"title: Parcels {prefix}\n"
        "department: Land Registration Office\n"
        f"source:\n  path: {path}\n  encoding: {encoding}\n  srid: 5899\n"
        "target:\n  table: land.parcels\n"
        f'natural_key: "{key}"\n' + PARCEL_FIELDS.format(**columns)
    )


SHP_COLUMNS = {
    "maxa": "MAXA",
    "soto": "SOTO",
    "sothua": "SOTHUA",
    "loai": "KHLOAIDAT",
    "chu": "CHUSDD",
    "diachi": "DIACHI",
}


def assert_parcels(conn, prefix: str, items: list[fx.Parcel]) -> None:
    rows = current_rows(
        conn,
        "land.parcels",
        prefix,
        ["commune_code", "sheet_no", "parcel_no", "land_use_codes", "address", "area_m2"],
        5899,
    )
    assert len(rows) == len(items)
    for p in items:
        commune, sheet, number, codes, address, area, geometry = rows[
            f"{prefix}-{fx.COMMUNE}-{fx.SHEET}-{p.parcel_no}"
        ]
        assert (commune, sheet, number) == (fx.COMMUNE, fx.SHEET, p.parcel_no)
        assert codes == p.land_use.split("+")
        assert address == p.address
        assert area == pytest.approx(p.geometry.area, abs=0.02)
        assert_same_geometry(geometry, p.geometry, VN2000_TOLERANCE)


@pytest.mark.parametrize(
    ("variant", "encoding", "cpg", "detected", "evidence"),
    [
        ("tcvn3", "tcvn3", None, "tcvn3", r"^TCVN3: 12 of 12 .*none are valid UTF-8"),
        ("vni", "vni", None, "vni", r"^VNI: 12 of 12"),
        ("utf8-cpg", "utf-8", "UTF-8", "utf-8", r"\.cpg \(UTF-8\) says utf-8, and the text agrees"),
        ("cp1258-cpg", "cp1258", "1258", "cp1258", r"\.cpg \(1258\) says cp1258, and the text"),
        # A .cpg that lies (Western code page over TCVN3 bytes) is overruled, and says so.
        ("tcvn3-cpg1252", "tcvn3", "ANSI 1252", "tcvn3", r"says cp1252, but .* TCVN3: 12 of 12"),
    ],
)
def test_shapefile_encoding_auto(
    variant, encoding, cpg, detected, evidence, tmp_path, settings, warehouse, wdb
) -> None:
    items = fx.parcels(24)
    shp = fx.parcel_shapefile(tmp_path / "land" / variant / "parcels.shp", items, encoding, cpg)
    batch = first_batch(shp, encoding="auto")
    assert batch.encoding == detected
    assert re.search(evidence, batch.encoding_evidence), batch.encoding_evidence
    assert set(batch.frame["DIACHI"]) == set(fx.ADDRESSES)

    prefix = f"FMT-SHP-{variant}"
    spec = parcel_spec(f"land/{variant}/parcels.shp", prefix, "auto", SHP_COLUMNS)
    assert_run(run(tmp_path, settings, warehouse, f"fmt_shp_{variant}", spec), 24)
    assert_parcels(wdb, prefix, items)
    owners = {
        r[0]
        for r in wdb.execute(
            "SELECT owner_name FROM land.parcels_current WHERE natural_key LIKE %s", (prefix + "%",)
        )
    }
    assert owners == set(fx.OWNERS)


def test_shapefile_explicit_encoding_that_does_not_fit_fails_clearly(
    tmp_path, settings, warehouse, wdb
) -> None:
    fx.parcel_shapefile(tmp_path / "land" / "p.shp", fx.parcels(6), "tcvn3")
    spec = parcel_spec("land/p.shp", "FMT-SHP-WRONG", "utf-8", SHP_COLUMNS)
    with pytest.raises(SourceError) as error:
        run(tmp_path, settings, warehouse, "fmt_shp_wrong_encoding", spec)
    message = str(error.value)
    assert "p.shp: row 1, column CHUSDD: not valid utf-8 text" in message
    assert "looks like tcvn3" in message and "source.encoding" in message
    count = "SELECT count(*) FROM land.parcels WHERE natural_key LIKE 'FMT-SHP-WRONG%'"
    assert wdb.execute(count).fetchone()[0] == 0


TAB_COLUMNS = {
    "maxa": "MaXa",
    "soto": "SoTo",
    "sothua": "SoThua",
    "loai": "LoaiDat",
    "chu": "ChuSD",
    "diachi": "DiaChi",
}


@pytest.mark.parametrize("encoding", ["auto", "tcvn3"])
def test_mapinfo_tab_with_tcvn3_under_a_windowslatin1_charset(
    encoding, tmp_path, settings, warehouse, wdb
) -> None:
    items = fx.parcels(20)
    tab = fx.parcel_mapinfo(tmp_path / "land" / "tab" / "thua_dat.tab", items)
    assert "WindowsLatin1" in tab.read_text(encoding="latin-1")
    batch = first_batch(tab, encoding=encoding)
    assert batch.encoding == "tcvn3"
    if encoding == "auto":
        assert "MapInfo charset (WindowsLatin1) says cp1252, but" in batch.encoding_evidence
    else:
        assert batch.encoding_evidence.startswith("source.encoding: tcvn3 in the job spec")

    prefix = f"FMT-TAB-{encoding}"
    spec = parcel_spec("land/tab/thua_dat.tab", prefix, encoding, TAB_COLUMNS)
    assert_run(run(tmp_path, settings, warehouse, f"fmt_tab_{encoding}", spec), 20)
    assert_parcels(wdb, prefix, items)
    files = sorted(p.name for p in tab.parent.iterdir())
    assert files == ["thua_dat.dat", "thua_dat.id", "thua_dat.map", "thua_dat.tab"]


@needs_ogr2ogr
def test_dgn_sheet_shapes_with_their_labels(tmp_path, settings, warehouse, wdb) -> None:
    items = fx.parcels(24)
    fx.parcel_dgn(tmp_path / "land" / "dgn" / "06685_to12.dgn", items)
    spec = f"""
title: Cadastral sheet 12 of commune 06685 (MicroStation v7)
source:
  path: land/dgn/06685_to12.dgn
  layer: level {fx.LEVEL_BOUNDARY}
  encoding: auto
  srid: 5899
target:
  table: land.parcels
natural_key: "FMT-DGN-06685-12-{{TEXT_L{fx.LEVEL_PARCEL_NO}}}"
fields:
  commune_code: {{value: "06685"}}
  sheet_no: {{value: 12}}
  parcel_no: {{from: TEXT_L{fx.LEVEL_PARCEL_NO}, type: integer, required: true}}
  land_use_codes: {{from: TEXT_L{fx.LEVEL_LAND_USE}, type: "text[]", split: "+",
                    codes: land_use, required: true}}
  land_use_primary: {{from: TEXT_L{fx.LEVEL_LAND_USE}, split: "+", codes: land_use}}
  address: TEXT_L{fx.LEVEL_ADDRESS}
  area_m2: {{derive: area}}
"""
    assert_run(run(tmp_path, settings, warehouse, "fmt_dgn", spec), 24)
    assert_parcels(wdb, "FMT-DGN", items)


# -- GeoPackage, GeoJSON, KML, GML -----------------------------------------------------------


def test_geopackage_layer_of_buildings(tmp_path, settings, warehouse, wdb) -> None:
    _, rows = fx.buildings_geopackage(tmp_path / "construction" / "buildings.gpkg")
    spec = """
title: Buildings (GeoPackage from the construction department)
source:
  path: construction/buildings.gpkg
  layer: nha
  srid: 5899
target:
  table: construction.buildings
natural_key: ma_nha
fields:
  building_code: {from: ma_nha, required: true}
  name: ten
  use_type: loai
  floors: {from: so_tang, type: integer}
  height_m: {from: chieu_cao, type: float}
  year_built: {from: nam_xd, type: integer}
  footprint_m2: {derive: area}
"""
    assert_run(run(tmp_path, settings, warehouse, "fmt_gpkg", spec), len(rows))
    got = current_rows(
        wdb, "construction.buildings", "FMT-GPKG", ["name", "use_type", "floors"], 5899
    )
    assert len(got) == len(rows)
    for r in rows:
        name, use, floors, geometry = got[r["ma_nha"]]
        assert (name, use, floors) == (r["ten"], r["loai"], r["so_tang"])
        assert_same_geometry(geometry, r["geometry"], VN2000_TOLERANCE)


def test_geojson_cameras(tmp_path, settings, warehouse, wdb) -> None:
    _, rows = fx.cameras_geojson(tmp_path / "utility" / "cameras.geojson")
    spec = """
title: Traffic and security cameras (GeoJSON)
source:
  path: utility/cameras.geojson
  encoding: auto
  srid: 4326
target:
  table: utility.cameras
natural_key: ma_camera
fields:
  camera_code: {from: ma_camera, required: true}
  name: ten
  sector: khu_vuc
  kind: loai
  status: {from: trang_thai, map: {"hoạt động": "active", "hỏng": "fault"}}
"""
    assert_run(run(tmp_path, settings, warehouse, "fmt_geojson", spec), len(rows))
    got = current_rows(wdb, "utility.cameras", "FMT-CAM", ["name", "sector", "status"], 4326)
    assert len(got) == len(rows)
    for r in rows:
        name, sector, status, geometry = got[r["ma_camera"]]
        assert (name, sector) == (r["ten"], r["khu_vuc"])
        assert status == ("active" if r["trang_thai"] == "hoạt động" else "fault")
        assert_same_geometry(geometry, shapely.Point(r["lonlat"]), LONLAT_TOLERANCE)


def test_kml_folder_of_wifi_hotspots(tmp_path, settings, warehouse, wdb) -> None:
    path, rows = fx.wifi_kml(tmp_path / "utility" / "wifi.kml")
    with pytest.raises(SourceError, match=r"2 layers \(Wifi công cộng, Trạm phát sóng\)"):
        first_batch(path)
    spec = """
title: Free wifi hotspots (KML exported from the city's web map)
source:
  path: utility/wifi.kml
  layer: Wifi công cộng
  srid: 4326
target:
  table: utility.wifi_hotspots
natural_key: Name
fields:
  hotspot_code: {from: Name, required: true}
  name: Description
  provider: {value: VNPT}
"""
    assert_run(run(tmp_path, settings, warehouse, "fmt_kml", spec), len(rows))
    got = current_rows(wdb, "utility.wifi_hotspots", "FMT-WIFI", ["name", "provider"], 4326)
    assert len(got) == len(rows)
    for r in rows:
        name, provider, geometry = got[r["Name"]]
        assert (name, provider) == (r["Description"], "VNPT")
        assert_same_geometry(geometry, shapely.Point(r["lonlat"]), LONLAT_TOLERANCE)


@needs_ogr2ogr
@pytest.mark.parametrize("sidecar", ["xsd", "gfs", "none"])
def test_gml_planning_zones(sidecar, tmp_path, settings, warehouse, wdb) -> None:
    path, rows = fx.zoning_gml(tmp_path / "land" / "gml" / "quy_hoach.gml", sidecar)
    assert "urn:ogc:def:crs:EPSG::5899" in path.read_text(encoding="utf-8")[:3000]
    before = sorted(p.name for p in path.parent.iterdir())
    spec = """
title: Detailed plan 1/500 (GML from the planning institute)
source:
  path: land/gml/quy_hoach.gml
  layer: o_quy_hoach
  srid: 5899
target:
  table: land.zoning
natural_key: ma_o
fields:
  zone_code: {from: ma_o, required: true}
  zone_name: ten_o
  planned_land_use: {from: chuc_nang, codes: land_use}
  max_far: {from: he_so_sd, type: float}
  max_floors: {from: tang_cao, type: integer}
  plan_id: ma_qh
  approved_on: {from: ngay_duyet, type: date}
  area_m2: {derive: area}
"""
    assert_run(run(tmp_path, settings, warehouse, f"fmt_gml_{sidecar}", spec), len(rows))
    got = current_rows(
        wdb, "land.zoning", f"FMT-GML-{sidecar}", ["zone_name", "max_floors", "approved_on"], 5899
    )
    assert len(got) == len(rows)
    for r in rows:
        name, floors, approved, geometry = got[r["ma_o"]]
        assert (name, floors, str(approved)) == (r["ten_o"], r["tang_cao"], r["ngay_duyet"])
        assert_same_geometry(geometry, r["geometry"], VN2000_TOLERANCE)
    # Reading never writes a .gfs into the delivery folder.
    assert sorted(p.name for p in path.parent.iterdir()) == before


# -- CSV -------------------------------------------------------------------------------------


def test_csv_lon_lat_from_excel_utf8_bom(tmp_path, settings, warehouse, wdb) -> None:
    points = fx.points_lonlat(30)
    statuses = ("sáng", "tắt", "hỏng")
    rows = [
        [
            f"FMT-DEN-{i + 1:04d}",
            fx.ROADS[i % 4],
            statuses[i % 3],
            100 + 25 * (i % 3),
            2015 + i % 9,
            fx.COMMUNE,
            f"{lon:.7f}",
            f"{lat:.7f}",
        ]
        for i, (lon, lat) in enumerate(points)
    ]
    header = ["ma_den", "ten_duong", "trang_thai", "cong_suat", "nam_lap", "ma_xa", "lon", "lat"]
    fx.write_csv(tmp_path / "utility" / "lamps.csv", header, rows, "utf-8", bom=True)
    batch = first_batch(tmp_path / "utility" / "lamps.csv", encoding="auto")
    assert batch.encoding == "utf-8"
    assert "byte-order mark" in batch.encoding_evidence
    spec = """
title: Street lamps (lighting company, Excel export)
source:
  path: utility/lamps.csv
  encoding: auto
  srid: 4326
  geometry: {x: lon, y: lat}
target:
  table: utility.street_lamps
natural_key: ma_den
fields:
  lamp_code: {from: ma_den, required: true}
  road_name: ten_duong
  status: {from: trang_thai, map: {"sáng": "on", "tắt": "off", "hỏng": "fault"}}
  power_w: {from: cong_suat, type: integer}
  install_year: {from: nam_lap, type: integer}
  commune_code: ma_xa
"""
    assert_run(run(tmp_path, settings, warehouse, "fmt_csv_lonlat", spec), 30)
    got = current_rows(wdb, "utility.street_lamps", "FMT-DEN", ["road_name", "status"], 4326)
    assert len(got) == 30
    for row, (lon, lat) in zip(rows, points, strict=True):
        road, status, geometry = got[row[0]]
        assert road == row[1]
        assert status == {"sáng": "on", "tắt": "off", "hỏng": "fault"}[row[2]]
        assert_same_geometry(geometry, shapely.Point(lon, lat), LONLAT_TOLERANCE)


def test_csv_vn2000_x_northing_y_easting_in_cp1258(tmp_path, settings, warehouse, wdb) -> None:
    """Surveyors write X = northing, Y = easting; Vietnamese Windows' Excel writes cp1258."""
    items = fx.parcels(25, prefix="FMT-GP", lon=107.085, lat=20.985)
    rows = []
    for i, p in enumerate(items):
        point = p.geometry.representative_point()
        rows.append(
            [
                f"FMT-GP-{i + 1:03d}/2025",
                f"{1 + i % 28:02d}/{1 + i % 12:02d}/2025",
                p.owner,
                p.address,
                fx.COMMUNE,
                1 + i % 7,
                f"{120.5 + i:.1f}".replace(".", ","),
                "Đã cấp",
                f"{round(point.y, 3):.3f}",
                f"{round(point.x, 3):.3f}",
            ]
        )
    header = [
        "so_gp",
        "ngay_cap",
        "chu_dau_tu",
        "dia_chi",
        "ma_xa",
        "so_tang",
        "dt_san",
        "trang_thai",
        "X",
        "Y",
    ]
    path = fx.write_csv(tmp_path / "construction" / "permits.csv", header, rows, "cp1258")
    batch = first_batch(path, encoding="auto")
    assert batch.encoding == "cp1258", batch.encoding_evidence
    spec = """
title: Building permits (construction department, Excel CSV on Vietnamese Windows)
source:
  path: construction/permits.csv
  encoding: auto
  srid: 5899
  geometry: {x: "Y", y: "X"}
target:
  table: construction.permits
natural_key: so_gp
fields:
  permit_no: {from: so_gp, required: true}
  issued_on: {from: ngay_cap, type: date, format: "%d/%m/%Y"}
  applicant_name: chu_dau_tu
  address: dia_chi
  commune_code: ma_xa
  floors: {from: so_tang, type: integer}
  gross_floor_area_m2: {from: dt_san, type: float}
  status: trang_thai
"""
    assert_run(run(tmp_path, settings, warehouse, "fmt_csv_xy", spec), 25)
    got = current_rows(wdb, "construction.permits", "FMT-GP", ["address", "status"], 5899)
    assert len(got) == 25
    for row in rows:
        address, status, geometry = got[row[0]]
        assert (address, status) == (row[3], "Đã cấp")
        expected = shapely.Point(float(row[9]), float(row[8]))  # easting = Y, northing = X
        assert_same_geometry(geometry, expected, VN2000_TOLERANCE)


def test_csv_wkt_lines_in_vni(tmp_path, settings, warehouse, wdb) -> None:
    materials = ("Gang dẻo", "Nhựa HDPE", "Thép mạ kẽm")
    lines = []
    for p in fx.parcels(16, lon=107.04, lat=20.975):
        x, y = p.geometry.exterior.coords[0]
        lines.append(
            shapely.LineString([(x, y), (round(x + 35.25, 3), y), (round(x + 35.25, 3), y + 40)])
        )
    rows = [
        [
            f"FMT-ONG-{i + 1:03d}",
            100 + 50 * (i % 4),
            materials[i % 3],
            2010 + i,
            f"Vùng áp {fx.SECTORS[i % 4]}",
            line.wkt,
        ]
        for i, line in enumerate(lines)
    ]
    header = ["ma_ong", "duong_kinh", "vat_lieu", "nam_lap", "vung_ap", "WKT"]
    path = fx.write_csv(tmp_path / "utility" / "pipes.csv", header, rows, "vni")
    assert first_batch(path, encoding="auto", wkt="WKT").encoding == "vni"
    spec = """
title: Water pipes (water company, VNI-encoded CSV with WKT)
source:
  path: utility/pipes.csv
  encoding: auto
  srid: 5899
  geometry: {wkt: WKT}
target:
  table: utility.water_pipes
natural_key: ma_ong
fields:
  pipe_code: {from: ma_ong, required: true}
  diameter_mm: {from: duong_kinh, type: integer}
  material: vat_lieu
  install_year: {from: nam_lap, type: integer}
  pressure_zone: vung_ap
  length_m: {derive: length}
"""
    assert_run(run(tmp_path, settings, warehouse, "fmt_csv_wkt", spec), 16)
    got = current_rows(
        wdb, "utility.water_pipes", "FMT-ONG", ["material", "pressure_zone", "length_m"], 5899
    )
    assert len(got) == 16
    for row, line in zip(rows, lines, strict=True):
        material, zone, length, geometry = got[row[0]]
        assert (material, zone) == (row[2], row[4])
        assert length == pytest.approx(line.length, abs=0.02)
        assert_same_geometry(geometry, line, VN2000_TOLERANCE)


# -- GeoTIFF ------------------------------------------------------------------------------------

RASTER_SPEC = """
title: Flood depth (100-year)
kind: raster
source:
  path: hazard/{name}.tif
target:
  table: hazard.rasters
natural_key: name
fields:
  name: name
  kind: {{value: flood_depth_100y}}
  path: path
  sha256: sha256
  source_srid: {{from: source_srid, type: integer}}
  width: {{from: width, type: integer}}
  height: {{from: height, type: integer}}
  pixel_size: {{from: pixel_size, type: float}}
  nodata: {{from: nodata, type: float}}
  unit: {{value: m}}
"""


def test_geotiff_lands_in_the_raster_catalogue(tmp_path, settings, warehouse, wdb) -> None:
    fx.flood_depth_tiff(tmp_path / "hazard" / "FMT-flood-depth.tif")
    spec = RASTER_SPEC.format(name="FMT-flood-depth")
    assert_run(run(tmp_path, settings, warehouse, "fmt_tiff", spec), 1)
    srid, width, height, pixel, path = wdb.execute(
        "SELECT source_srid, width, height, pixel_size, path FROM hazard.rasters_current "
        "WHERE natural_key = 'FMT-flood-depth'"
    ).fetchone()
    assert (srid, width, height, pixel) == (5899, 60, 40, 10.0)
    assert Path(path).exists()


def test_geotiff_without_crs_is_rejected_clearly(tmp_path, settings, warehouse, wdb) -> None:
    fx.flood_depth_tiff(tmp_path / "hazard" / "FMT-no-crs.tif", with_crs=False)
    with pytest.raises(SourceError, match=r"FMT-no-crs\.tif: the raster has no CRS"):
        run(tmp_path, settings, warehouse, "fmt_tiff_no_crs", RASTER_SPEC.format(name="FMT-no-crs"))
    status, message = wdb.execute(
        "SELECT status, message FROM etl.runs WHERE job = 'fmt_tiff_no_crs' "
        "ORDER BY run_id DESC LIMIT 1"
    ).fetchone()
    assert status == "failed" and "no CRS" in message
    count = "SELECT count(*) FROM hazard.rasters WHERE natural_key = 'FMT-no-crs'"
    assert wdb.execute(count).fetchone()[0] == 0


# -- bad files: named, with what to fix, never a traceback ----------------------------------------


def test_unreadable_file_fails_the_run_with_its_name(tmp_path, settings, warehouse, wdb) -> None:
    bad = tmp_path / "construction" / "buildings.gpkg"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"PK\x03\x04 this is a zip, not a GeoPackage" * 10)
    spec = """
title: Buildings
source: {path: construction/buildings.gpkg, srid: 5899}
target: {table: construction.buildings}
natural_key: ma_nha
fields:
  building_code: {from: ma_nha, required: true}
"""
    with pytest.raises(SourceError, match=r"buildings\.gpkg: GDAL cannot open it"):
        run(tmp_path, settings, warehouse, "fmt_unreadable", spec)


def test_shapefile_without_its_dbf_is_named(tmp_path) -> None:
    shp = fx.parcel_shapefile(tmp_path / "p.shp", fx.parcels(3), "tcvn3")
    shp.with_suffix(".dbf").unlink()
    shp.with_suffix(".shx").unlink()
    with pytest.raises(SourceError, match=r"p\.shp: GDAL cannot open it .* \.shp, \.shx and \.dbf"):
        first_batch(shp, encoding="auto")


def test_missing_layer_lists_the_layers(tmp_path) -> None:
    path, _ = fx.buildings_geopackage(tmp_path / "b.gpkg")
    with pytest.raises(SourceError, match=r"no layer 'nha_o'; the file has: nha, ranh_gioi_du_an"):
        first_batch(path, layer="nha_o")
    with pytest.raises(SourceError, match=r"2 layers \(nha, ranh_gioi_du_an\); name the one"):
        first_batch(path)


def test_dgn_level_without_elements_lists_the_levels(tmp_path) -> None:
    if fx.ogr2ogr() is None:
        pytest.skip("GDAL's command-line tools (ogr2ogr) are not installed")
    path = fx.parcel_dgn(tmp_path / "s.dgn", fx.parcels(2))
    with pytest.raises(SourceError, match=r"no element on level 7; .*level 10 \(2 elements\)"):
        first_batch(path, layer="level 7")
    with pytest.raises(SourceError, match=r"a DGN file has one layer, elements"):
        first_batch(path, layer="parcels")


def test_csv_without_the_coordinate_columns(tmp_path) -> None:
    path = fx.write_csv(tmp_path / "x.csv", ["ma", "kinh_do", "vi_do"], [["A", "1", "2"]], "utf-8")
    with pytest.raises(
        SourceError,
        match=r"x\.csv: column\(s\) lon, lat named in source\.geometry\.x/geometry\.y"
        r" of the job spec are missing; the file has: ma, kinh_do, vi_do",
    ):
        first_batch(path, x="lon", y="lat")


def test_file_that_changes_encoding_midway_is_refused(tmp_path) -> None:
    """auto decides on the first batch; a later batch in another encoding is an error."""
    header = ["ma", "dia_chi", "lon", "lat"]
    utf8 = [[f"A{i}", fx.ADDRESSES[i % 6], "107.05", "20.95"] for i in range(4)]
    path = tmp_path / "mixed.csv"
    fx.write_csv(path, header, utf8, "utf-8")
    with path.open("ab") as handle:
        handle.write(b"B1," + fx.encode("Phường Hồng Gai", "tcvn3") + b",107.05,20.95\r\n")
    source = SourceSpec(path=str(path), encoding="auto", x="lon", y="lat")
    with pytest.raises(SourceError, match=r"mixed\.csv: row 6, column dia_chi: not valid utf-8"):
        list(read_batches(path, source, batch_size=2))


def test_legacy_text_saved_into_a_unicode_format_is_repaired(tmp_path) -> None:
    """A TCVN3 shapefile converted to GeoJSON by a tool that assumed latin-1."""
    path = tmp_path / "moji.geojson"
    texts = [fx.encode(a, "tcvn3").decode("latin-1") for a in fx.ADDRESSES]
    from pyogrio.raw import write

    write(
        path,
        shapely.to_wkb(np.array([shapely.Point(107.05, 20.95)] * len(texts))),
        field_data=[np.array(texts, dtype=object)],
        fields=["dia_chi"],
        driver="GeoJSON",
        geometry_type="Point",
        crs="EPSG:4326",
    )
    batch = first_batch(path, encoding="auto")
    assert batch.encoding == "tcvn3"
    assert list(batch.frame["dia_chi"]) == list(fx.ADDRESSES)
    assert first_batch(path, encoding="tcvn3").frame["dia_chi"].tolist() == list(fx.ADDRESSES)


def test_the_reader_table_gives_each_source_its_reader(tmp_path) -> None:
    """FORMATS is read top to bottom: the job's kind, the suffix of source.path, the GDAL
    driver; ogr takes every other vector format. Counts come from the chosen reader."""
    shp = fx.parcel_shapefile(tmp_path / "p.shp", fx.parcels(3), "tcvn3")
    gpkg, _ = fx.buildings_geopackage(tmp_path / "b.gpkg")
    table = fx.write_csv(tmp_path / "x.csv", ["ma"], [["A"]], "utf-8")
    tif = fx.flood_depth_tiff(tmp_path / "d.tif")
    chosen = {
        path.name: readers.reader_for(path, SourceSpec(path=str(path)), kind=kind).__name__
        for path, kind in [(shp, "vector"), (gpkg, "vector"), (table, "table"), (tif, "raster")]
    }
    assert chosen == {
        "p.shp": "sdi.etl.readers.ogr",
        "b.gpkg": "sdi.etl.readers.ogr",
        "x.csv": "sdi.etl.readers.csv",
        "d.tif": "sdi.etl.readers.raster",
    }
    assert readers.count_rows(shp, SourceSpec(path=str(shp))) == 3
    assert readers.count_rows(table, SourceSpec(path=str(table)), kind="table") is None
    assert readers.count_rows(tmp_path / "gone.shp", SourceSpec(path="gone.shp")) is None
    with pytest.raises(SourceError, match=r"gone\.shp: file not found"):
        first_batch(tmp_path / "gone.shp")
    if fx.ogr2ogr() is not None:
        dgn = fx.parcel_dgn(tmp_path / "s.dgn", fx.parcels(2))
        assert readers.reader_for(dgn, SourceSpec(path=str(dgn))).__name__ == (
            "sdi.etl.readers.dgn"
        )
        assert readers.count_rows(dgn, SourceSpec(path=str(dgn), layer="level 10")) is None


def test_readers_load_their_libraries_only_when_chosen() -> None:
    """The pipeline and the vector readers never import rasterio: raster jobs pay for it."""
    code = (
        "import sys, sdi.etl.pipeline, sdi.etl.readers.ogr, sdi.etl.readers.csv;"
        "print('rasterio' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
