"""Downloads over HTTP: GeoPackage, zipped Shapefile, CSV and GeoJSON of a collection or a query.

Against the real server and the test warehouse; the files are opened with GDAL (pyogrio, and
the system's ogrinfo) and with QGIS (Debian's python3-qgis, headless), and compared with what
PostGIS says about the same query.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pyogrio
import pytest
import shapely
from pyproj import CRS

from sdi.keys import create_key
from sdi.layers import load_layers
from sdi.settings import Settings
from tests.conftest import free_port
from tests.support.api import SYSTEM_PYTHON, run_qgis_probe
from tests.support.environment import sdi_settings


def qgis_available() -> bool:
    try:
        done = subprocess.run([SYSTEM_PYTHON, "-c", "import qgis.core"], capture_output=True)
    except OSError:
        return False
    return done.returncode == 0


LAYERS = {layer.id: layer for layer in load_layers()}
INTERNAL = "permits_register"  # internal, construction only, publishes applicant_name
MISSING = "no_such_layer_at_all"
VN2000_TM3 = "http://www.opengis.net/def/crs/EPSG/0/5899"
FILE_MEMBERS = {".shp", ".shx", ".dbf", ".prj", ".cpg"}


@pytest.fixture(scope="module")
def keys(server: str, settings) -> dict[str, str]:
    with psycopg.connect(settings.database_url) as conn:
        _, construction = create_key(conn, "construction", "downloads test, construction")
        _, planning = create_key(conn, "planning", "downloads test, planning")
        _, admin = create_key(conn, "*", "downloads test, administrator")
    return {"construction": construction, "planning": planning, "admin": admin}


@pytest.fixture(scope="module")
def commune(db_module) -> str:
    """A commune of Hạ Long with parcels whose address has Vietnamese letters."""
    (code,) = db_module.execute(
        "SELECT p.commune_code FROM land.parcels_current p "
        "JOIN admin.communes_current c USING (commune_code) "
        "WHERE c.city = 'ha_long' AND p.address ~ '[ạảấầẩẫậắằẳẵặđ]' "
        "GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
    ).fetchone()
    return code


@pytest.fixture(scope="module")
def db_module(loaded, settings) -> Iterator[psycopg.Connection]:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        yield conn


def download(
    api: httpx.Client, collection: str, key: str | None = None, **params
) -> httpx.Response:
    headers = {"X-API-Key": key} if key else {}
    return api.get(f"/collections/{collection}/download", params=params, headers=headers)


def parcels_filter(commune: str) -> str:
    return f"commune_code='{commune}' AND declared_area_m2 > 100"


def expected_parcels(db, commune: str) -> dict[str, str]:
    """natural_key → address of the parcels the filter selects, as PostGIS counts them."""
    rows = db.execute(
        "SELECT natural_key, address FROM land.parcels_current "
        "WHERE commune_code = %s AND declared_area_m2 > 100",
        (commune,),
    ).fetchall()
    assert rows
    return dict(rows)


def save(response: httpx.Response, path: Path) -> Path:
    assert response.status_code == 200, response.text
    path.write_bytes(response.content)
    return path


# -- GeoPackage ------------------------------------------------------------------------------
def test_geopackage_with_a_cql2_filter_has_the_features_crs_and_vietnamese_text(
    api, db_module, commune, tmp_path
) -> None:
    response = download(
        api, "parcels", f="gpkg", filter=parcels_filter(commune), **{"filter-lang": "cql2-text"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/geopackage+sqlite3"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="parcels-') and '.gpkg"' in disposition
    path = save(response, tmp_path / "parcels.gpkg")
    expected = expected_parcels(db_module, commune)
    assert int(response.headers["x-number-matched"]) == len(expected)
    info = pyogrio.read_info(path)
    assert info["features"] == len(expected)
    assert CRS(info["crs"]).to_epsg() == 4326
    assert info["geometry_type"] in ("Polygon", "MultiPolygon", "Unknown")
    meta, table = pyogrio.read_arrow(path)
    got = dict(zip(table["natural_key"].to_pylist(), table["address"].to_pylist(), strict=True))
    assert got == expected  # Vietnamese addresses (TCVN3 in the delivery) intact, in UTF-8
    assert any(ch in "".join(got.values()) for ch in "ạảấầẩẫậđ")
    # published properties only: the owner's name (personal, never published) is absent
    assert "owner_name" not in meta["fields"]
    assert set(meta["fields"]) == {"id", *LAYERS["parcels"].published_properties}


def test_gdal_ogrinfo_reads_the_geopackage(api, db_module, commune, tmp_path) -> None:
    path = save(
        download(api, "parcels", f="gpkg", filter=parcels_filter(commune)), tmp_path / "p.gpkg"
    )
    done = subprocess.run(
        ["ogrinfo", "-so", "-al", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert f"Feature Count: {len(expected_parcels(db_module, commune))}" in done.stdout
    assert 'ID["EPSG",4326]' in done.stdout
    assert "address: String" in done.stdout


QGIS_PROBE = """
import json, sys
from qgis.core import QgsApplication, QgsVectorLayer
QgsApplication.setPrefixPath("/usr", True)
qgis = QgsApplication([], False)
qgis.initQgis()
layer = QgsVectorLayer(sys.argv[1], "download", "ogr")
result = {"valid": layer.isValid()}
if layer.isValid():
    index = layer.fields().indexOf(sys.argv[2])
    result["crs"] = layer.crs().authid()
    result["count"] = layer.featureCount()
    result["fields"] = layer.fields().names()
    result["values"] = [f.attributes()[index] for f in layer.getFeatures()]
print(json.dumps(result, default=str))
"""


@pytest.mark.skipif(not qgis_available(), reason="QGIS is not installed (python3-qgis)")
@pytest.mark.parametrize("fmt", ["gpkg", "shp"])
def test_qgis_opens_the_download(api, db_module, commune, tmp_path, fmt: str) -> None:
    response = download(api, "parcels", f=fmt, filter=parcels_filter(commune))
    path = save(response, tmp_path / f"parcels.{'gpkg' if fmt == 'gpkg' else 'zip'}")
    probe = tmp_path / "probe.py"
    probe.write_text(QGIS_PROBE)
    source = str(path) if fmt == "gpkg" else f"/vsizip/{path}/parcels.shp"
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    layer = run_qgis_probe(probe, source, "address", runtime_dir=runtime)
    expected = expected_parcels(db_module, commune)
    assert layer["valid"]
    assert layer["count"] == len(expected)
    assert sorted(layer["values"]) == sorted(expected.values())
    assert layer["crs"] == "EPSG:4326"


# -- Shapefile ---------------------------------------------------------------------------------
def test_zipped_shapefile_in_vn2000_tm3(api, db_module, commune, tmp_path) -> None:
    response = download(api, "parcels", f="shp", crs=VN2000_TM3, filter=parcels_filter(commune))
    assert response.headers["content-type"] == "application/zip"
    assert '.zip"' in response.headers["content-disposition"]
    path = save(response, tmp_path / "parcels.zip")
    with zipfile.ZipFile(path) as zipped:
        names = zipped.namelist()
        assert {Path(n).suffix for n in names} == FILE_MEMBERS | {".csv"}
        assert zipped.read("parcels.cpg").decode().strip().upper() in ("UTF-8", "UTF8")
        prj = zipped.read("parcels.prj").decode()
        mapping = list(csv.reader(io.StringIO(zipped.read("parcels-fields.csv").decode())))
    assert "VN" in prj and "2000" in prj
    assert CRS.from_wkt(prj).to_epsg(min_confidence=50) == 5899 or "107.75" in prj
    # field names of at most 10 characters, listed with the property they stand for
    fields = dict(mapping[1:])
    assert all(len(short) <= 10 for short in fields)
    assert fields["declared_a"] == "declared_area_m2" and fields["natural_ke"] == "natural_key"
    source = f"/vsizip/{path}/parcels.shp"
    meta, table = pyogrio.read_arrow(source)
    assert set(meta["fields"]) == set(fields)
    expected = expected_parcels(db_module, commune)
    assert len(table) == len(expected)
    keys = table["natural_ke"].to_pylist()
    got = dict(zip(keys, table["address"].to_pylist(), strict=True))
    assert got == expected
    # coordinates in VN-2000 / TM-3: those PostGIS computes for the same parcel
    key = sorted(expected)[0]
    x, y = db_module.execute(
        "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_PointOnSurface(ST_Transform(geom, 5899)) AS c "
        "FROM land.parcels_current WHERE natural_key = %s) x",
        (key,),
    ).fetchone()
    index = keys.index(key)
    geometry = shapely.from_wkb(table[meta["geometry_name"] or "wkb_geometry"][index].as_py())
    assert 300_000 < x < 800_000 and 2_000_000 < y < 2_600_000
    assert geometry.buffer(0.01).contains(shapely.Point(x, y))


# -- CSV and GeoJSON ---------------------------------------------------------------------------
def test_csv_cells_that_would_be_formulas_are_neutralised(api, db_module, tmp_path) -> None:
    lamp_id, lamp_code, road_name = db_module.execute(
        "SELECT id, lamp_code, road_name FROM utility.street_lamps_current ORDER BY id LIMIT 1"
    ).fetchone()
    formula = '=HYPERLINK("http://evil.example/","Hạ Long")'
    db_module.execute(
        "UPDATE utility.street_lamps SET road_name = %s WHERE id = %s AND valid_to IS NULL",
        (formula, lamp_id),
    )
    try:
        response = download(api, "lamps", f="csv", filter=f"lamp_code='{lamp_code}'")
    finally:
        db_module.execute(
            "UPDATE utility.street_lamps SET road_name = %s WHERE id = %s AND valid_to IS NULL",
            (road_name, lamp_id),
        )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    text = response.content.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 1
    assert rows[0]["road_name"] == "'" + formula
    assert rows[0]["WKT"].startswith("POINT")
    assert rows[0]["id"] == str(lamp_id)


def test_csv_has_the_published_properties_and_vietnamese_text(api, db_module, commune) -> None:
    response = download(api, "parcels", f="csv", filter=parcels_filter(commune))
    assert response.status_code == 200
    assert response.content.startswith(b"\xef\xbb\xbf")  # BOM: spreadsheets read UTF-8
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    expected = expected_parcels(db_module, commune)
    assert {r["natural_key"]: r["address"].removeprefix("'") for r in rows} == expected
    assert list(rows[0]) == ["id", *LAYERS["parcels"].published_properties, "WKT"]


def test_geojson_is_streamed_and_complete(api, db_module) -> None:
    (count,) = db_module.execute("SELECT count(*) FROM utility.street_lamps_current").fetchone()
    chunks = 0
    body = b""
    with api.stream("GET", "/collections/lamps/download", params={"f": "geojson"}) as response:
        assert response.status_code == 200
        assert "content-length" not in response.headers  # streamed, not buffered
        assert response.headers["content-type"].startswith("application/geo+json")
        for chunk in response.iter_raw():
            chunks += 1
            body += chunk
    document = json.loads(body)
    assert document["type"] == "FeatureCollection"
    assert len(document["features"]) == count == int(response.headers["x-number-matched"])
    assert chunks > 1
    assert set(document["features"][0]["properties"]) == set(LAYERS["lamps"].published_properties)


def test_geojson_in_vn2000_has_projected_coordinates(api) -> None:
    response = download(api, "lamps", f="geojson", crs=VN2000_TM3, bbox="107.0,20.9,107.1,21.0")
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["crs"]["properties"]["name"].endswith("5899")
    x, y = document["features"][0]["geometry"]["coordinates"][:2]
    assert 300_000 < x < 800_000 and 2_000_000 < y < 2_600_000


# -- access, personal data, limits ------------------------------------------------------------
@pytest.mark.parametrize("who", ["anonymous", "planning"])
@pytest.mark.parametrize("fmt", ["gpkg", "shp", "csv", "geojson"])
def test_an_internal_collection_is_not_found_without_the_right_key(
    api, keys, who: str, fmt: str
) -> None:
    key = keys.get(who)
    hidden = download(api, INTERNAL, key, f=fmt, filter="floors > 2")
    missing = download(api, MISSING, key, f=fmt, filter="floors > 2")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.content == missing.content
    assert hidden.json()["description"] == "Collection not found"


def test_the_internal_collection_downloads_with_its_key_without_personal_data(
    api, keys, db_module, tmp_path
) -> None:
    response = download(api, INTERNAL, keys["construction"], f="gpkg", filter="floors > 2")
    path = save(response, tmp_path / "register.gpkg")
    (count,) = db_module.execute(
        "SELECT count(*) FROM construction.permits_current WHERE floors > 2"
    ).fetchone()
    meta, table = pyogrio.read_arrow(path)
    assert len(table) == count > 0
    assert "permit_no" in meta["fields"]
    assert "applicant_name" not in meta["fields"]  # personal: never in a download
    for fmt in ("csv", "geojson"):
        text = download(api, INTERNAL, keys["construction"], f=fmt, filter="floors > 2").text
        assert "applicant_name" not in text


@pytest.fixture(scope="module")
def small_limit_server(loaded, settings: Settings, tmp_path_factory) -> Iterator[str]:
    """A second server whose anonymous limit is 5 features, key holders' 50."""
    from sdi.serve import Server

    overrides = {
        "SDI_PORT": str(free_port()),
        "SDI_STATE_DIR": str(tmp_path_factory.mktemp("limits-state")),
        "SDI_DOWNLOAD_ANONYMOUS_MAX_FEATURES": "5",
        "SDI_DOWNLOAD_KEY_MAX_FEATURES": "50",
    }
    with sdi_settings(**overrides) as limited:
        process = Server(limited)
        process.start()
        url = limited.server_url
    try:
        yield url
    finally:
        process.stop(quiet=True)


def test_anonymous_downloads_above_the_limit_are_refused(
    small_limit_server: str, keys, db_module
) -> None:
    codes = [
        code
        for (code,) in db_module.execute(
            "SELECT lamp_code FROM utility.street_lamps_current ORDER BY lamp_code LIMIT 60"
        )
    ]

    with httpx.Client(base_url=small_limit_server, timeout=60) as client:
        refused = client.get("/collections/lamps/download", params={"f": "gpkg"})
        assert refused.status_code == 413
        body = refused.json()
        assert body["code"] == "PayloadTooLarge"
        assert "narrow" in body["description"] and "API key" in body["description"]
        narrow = client.get(
            "/collections/lamps/download",
            params={"f": "csv", "filter": f"lamp_code <= '{codes[4]}'"},
        )
        assert narrow.status_code == 200
        assert len(narrow.text.strip().splitlines()) == 1 + 5
        headers = {"X-API-Key": keys["planning"]}
        keyed = client.get(
            "/collections/lamps/download",
            params={"f": "csv", "filter": f"lamp_code <= '{codes[49]}'"},
            headers=headers,
        )
        assert keyed.status_code == 200
        too_many = client.get("/collections/lamps/download", params={"f": "csv"}, headers=headers)
        assert too_many.status_code == 413
        assert "/processes/export/execution" in too_many.json()["description"]


# -- bad requests ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "params",
    [
        {"f": "xls"},
        {"filter": "commune_code = "},
        {"filter": "no_such_property = 1"},
        {"filter": "address = 5"},
        {"bbox": "1,2,3"},
        {"crs": "http://www.opengis.net/def/crs/EPSG/0/3857"},
        {"filter-lang": "cql2-json", "filter": "{}"},
        {"datetime": "yesterday"},
        {"no_such_property": "x"},
    ],
)
def test_bad_requests_are_400_with_an_ogc_exception(api, params: dict) -> None:
    response = download(api, "parcels", **params)
    assert response.status_code == 400, response.text
    assert {"code", "description"} <= response.json().keys()


def test_other_methods_are_405(api, keys) -> None:
    response = api.post(
        "/collections/lamps/download", headers={"X-API-Key": keys["admin"], "Content-Type": "x/y"}
    )
    assert response.status_code == 405


# -- links, the OpenAPI document and the export process ---------------------------------------
def test_collections_and_catalogue_records_link_the_downloads(api) -> None:
    collection = api.get("/collections/lamps", params={"f": "json"}).json()
    enclosures = {k["type"]: k["href"] for k in collection["links"] if k["rel"] == "enclosure"}
    assert set(enclosures) == {
        "application/geopackage+sqlite3",
        "application/zip",
        "text/csv",
        "application/geo+json",
    }
    assert enclosures["application/zip"].endswith("/collections/lamps/download?f=shp")
    assert api.get(enclosures["application/zip"]).status_code == 200
    html = api.get("/collections/lamps", params={"f": "html"}).text
    assert "/collections/lamps/download?f=gpkg" in html
    record = api.get("/collections/catalogue/items/lamps", params={"f": "json"}).json()
    hrefs = [k["href"] for k in record["links"] if k["rel"] == "enclosure"]
    assert any(h.endswith("/collections/lamps/download?f=gpkg") for h in hrefs)


def test_openapi_documents_the_route_and_its_formats(api) -> None:
    paths = api.get("/openapi", params={"f": "json"}).json()["paths"]
    operation = paths["/collections/lamps/download"]["get"]
    content = operation["responses"]["200"]["content"]
    assert set(content) >= {"application/geopackage+sqlite3", "application/zip", "text/csv"}
    assert "413" in operation["responses"]
    assert not [p for p in paths if p.startswith(f"/collections/{INTERNAL}")]


def test_the_export_process_writes_the_same_file(api, keys, db_module) -> None:
    response = api.post(
        "/processes/export/execution",
        json={"inputs": {"collection": "lamps", "format": "csv", "filter": "power_w > 100"}},
        headers={"X-API-Key": keys["admin"]},
    )
    assert response.status_code == 200, response.text
    (count,) = db_module.execute(
        "SELECT count(*) FROM utility.street_lamps_current WHERE power_w > 100"
    ).fetchone()
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert len(rows) == count
    internal = api.post(
        "/processes/export/execution",
        json={"inputs": {"collection": INTERNAL, "format": "csv"}},
        headers={"X-API-Key": keys["admin"]},
    )
    assert internal.status_code == 200 and "applicant" not in internal.text  # never personal


def run_export(client: httpx.Client, key: str, inputs: dict) -> str:
    """Start an export job with ``key``; its /jobs/{id} path, once the job has ended."""
    started = client.post(
        "/processes/export/execution",
        json={"inputs": inputs},
        headers={"X-API-Key": key, "Prefer": "respond-async"},
    )
    assert started.status_code == 201, started.text
    job = f"/jobs/{started.json()['jobID']}"
    for _ in range(600):
        status = client.get(job, params={"f": "json"}, headers={"X-API-Key": key}).json()
        if status["status"] in ("successful", "failed", "dismissed"):
            break
        time.sleep(0.2)
    assert status["status"] == "successful", status
    return job


def test_a_key_holder_exports_a_filtered_internal_layer_as_a_job(
    api, keys, db_module, tmp_path
) -> None:
    """GeoPackage of the internal register, CQL2-filtered, in VN-2000 / TM-3, for its key."""
    where = "floors > 2 AND status <> 'revoked'"
    job = run_export(
        api,
        keys["construction"],
        {"collection": INTERNAL, "format": "gpkg", "filter": where, "crs": VN2000_TM3},
    )
    result = api.get(f"{job}/results", headers={"X-API-Key": keys["construction"]})
    assert result.status_code == 200, result.text
    assert result.headers["content-type"].startswith("application/geopackage+sqlite3")
    path = save(result, tmp_path / "register.gpkg")
    expected = dict(
        db_module.execute(
            "SELECT permit_no, address FROM construction.permits_current "
            "WHERE floors > 2 AND status <> 'revoked'"
        ).fetchall()
    )
    meta, table = pyogrio.read_arrow(path)
    assert len(table) == len(expected) > 0
    assert CRS.from_user_input(meta["crs"]).to_epsg() == 5899
    assert "applicant_name" not in meta["fields"]  # personal: never in an export
    got = dict(zip(table["permit_no"].to_pylist(), table["address"].to_pylist(), strict=True))
    assert got == expected
    assert any(ch in "".join(got.values()) for ch in "ạảấầẩẫậắằẳẵặđơư")  # Vietnamese, intact
    geometry = table[meta["geometry_name"] or "wkb_geometry"][0].as_py()
    x = shapely.from_wkb(geometry).centroid.x
    assert 300_000 < x < 800_000  # projected metres, not degrees
    # the job and its file are the construction key's: another key sees neither, nor the list
    for key in (keys["planning"], None):
        headers = {"X-API-Key": key} if key else {}
        assert api.get(job, params={"f": "json"}, headers=headers).status_code == 404
        assert api.get(f"{job}/results", headers=headers).status_code == 404
        listed = api.get("/jobs", params={"f": "json"}, headers=headers).json()["jobs"]
        assert job.rsplit("/", 1)[1] not in {j["jobID"] for j in listed}
    admin = api.get(f"{job}/results", headers={"X-API-Key": keys["admin"]})
    assert admin.status_code == 200 and admin.content == path.read_bytes()


def test_exports_of_what_the_caller_may_not_read_are_refused_before_a_job(api, keys) -> None:
    url = "/processes/export/execution"
    body = {"inputs": {"collection": INTERNAL, "format": "gpkg", "filter": "floors > 2"}}
    for prefer in ({}, {"Prefer": "respond-async"}):
        anonymous = api.post(url, json=body, headers=prefer)
        assert anonymous.status_code == 401, anonymous.text
        assert "API key" in anonymous.json()["description"]
        public = api.post(url, json={"inputs": {"collection": "lamps"}}, headers=prefer)
        assert public.status_code == 401  # anonymous: the download route and its limit
        other = api.post(url, json=body, headers={"X-API-Key": keys["planning"], **prefer})
        missing = api.post(
            url,
            json={"inputs": {"collection": MISSING}},
            headers={"X-API-Key": keys["planning"], **prefer},
        )
        assert other.status_code == missing.status_code == 404
        assert other.json() == missing.json()
        # a client cannot claim another caller
        forged = {"inputs": {**body["inputs"], "_caller": {"key_id": "x", "department": "*"}}}
        assert api.post(url, json=forged, headers=prefer).status_code == 401
        forged_key = api.post(url, json=forged, headers={"X-API-Key": keys["planning"], **prefer})
        assert forged_key.status_code == 404
    bad = api.post(
        url,
        json={"inputs": {"collection": "lamps", "format": "xls"}},
        headers={"X-API-Key": keys["planning"]},
    )
    assert bad.status_code == 400 and "format" in bad.json()["description"]


def test_key_holders_export_above_the_limits_as_a_job(small_limit_server, keys, db_module) -> None:
    """Above the download limits (anonymous 5, keys 50): at once refused, as a job complete."""
    (count,) = db_module.execute("SELECT count(*) FROM utility.street_lamps_current").fetchone()
    assert count > 50
    inputs = {"collection": "lamps", "format": "csv"}
    with httpx.Client(base_url=small_limit_server, timeout=120) as client:
        key = {"X-API-Key": keys["planning"]}
        at_once = client.post("/processes/export/execution", json={"inputs": inputs}, headers=key)
        assert at_once.status_code >= 400
        assert "respond-async" in at_once.text
        job = run_export(client, keys["planning"], inputs)
        result = client.get(f"{job}/results", headers=key)
        assert result.status_code == 200
        rows = list(csv.DictReader(io.StringIO(result.content.decode("utf-8-sig"))))
        assert len(rows) == count


def test_shapefile_field_names_are_deterministic() -> None:
    from sdi.api.downloads import shapefile_names

    names = shapefile_names(["official_area_km2", "official_area_m2", "Official_a", "đất_ở"])
    assert names == {
        "official_area_km2": "official_a",
        "official_area_m2": "official_1",
        "Official_a": "Official_2",
        "đất_ở": "dat_o",
    }
    assert names == shapefile_names(list(names))


def test_head_answers_the_headers_and_the_count(api, db_module) -> None:
    (count,) = db_module.execute("SELECT count(*) FROM utility.street_lamps_current").fetchone()
    response = api.head("/collections/lamps/download", params={"f": "shp"})
    assert response.status_code == 200
    assert response.content == b""
    assert int(response.headers["x-number-matched"]) == count
    assert response.headers["content-disposition"].endswith('.zip"')
    assert api.head(f"/collections/{INTERNAL}/download").status_code == 404
