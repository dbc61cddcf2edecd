"""The served OGC API over HTTP (real pygeoapi under uvicorn, real PostGIS)."""

from __future__ import annotations

import json
import subprocess

import pyogrio
import pytest
import shapely
from owslib.ogcapi.features import Features

from sdi.layers import load_layers
from tests.support.api import bbox_around

EPSG_5899 = "http://www.opengis.net/def/crs/EPSG/0/5899"


def test_collections_are_exactly_the_layers(api) -> None:
    body = api.get("/collections", params={"f": "json"}).json()
    served = sorted(c["id"] for c in body["collections"])
    # an anonymous client sees the public layers; the keyed view is in test_access.py
    public = [x.id for x in load_layers() if x.access == "public" and not x.departments]
    assert served == sorted(public)


def test_parcel_vertex_round_trips_vn2000_within_a_centimetre(api, settings, db) -> None:
    path = sorted(settings.source_dir.glob("land/parcels_*.shp"))[0]
    frame = pyogrio.read_dataframe(path, max_features=20)
    row = frame[shapely.is_valid(frame.geometry.values)].iloc[0]
    key = f"{row.MAXA}-{row.SOTO}-{row.SOTHUA}"
    item_id = db.execute(
        "SELECT id FROM land.parcels_current WHERE natural_key = %s", (key,)
    ).fetchone()[0]
    response = api.get(f"/collections/parcels/items/{item_id}", params={"crs": EPSG_5899})
    assert response.status_code == 200
    assert response.headers["content-crs"] == f"<{EPSG_5899}>"
    served = shapely.geometry.shape(response.json()["geometry"])
    source_vertices = shapely.get_coordinates(row.geometry)
    served_vertices = shapely.get_coordinates(served)
    assert len(served_vertices) == len(source_vertices)
    assert abs(served_vertices - source_vertices).max() < 0.01


def test_bbox_returns_only_features_inside_the_bbox(api, db) -> None:
    bbox = bbox_around(db, "utility.street_lamps")
    response = api.get(
        "/collections/lamps/items", params={"bbox": ",".join(map(str, bbox)), "limit": 10000}
    )
    assert response.status_code == 200
    body = response.json()
    box = shapely.box(*bbox)
    assert body["features"], "the test bbox should hold lamps"
    for feature in body["features"]:
        assert shapely.geometry.shape(feature["geometry"]).intersects(box)
    expected = db.execute(
        "SELECT count(*) FROM utility.street_lamps_current "
        "WHERE ST_Intersects(geom, ST_MakeEnvelope(%s, %s, %s, %s, 4326))",
        bbox,
    ).fetchone()[0]
    assert body["numberMatched"] == body["numberReturned"] == expected


def test_vietnamese_text_is_served_decoded(api) -> None:
    body = api.get(
        "/collections/communes/items", params={"commune_code": "06688", "f": "json"}
    ).json()
    assert [f["properties"]["commune_name"] for f in body["features"]] == ["Phường Hạ Long"]


@pytest.mark.parametrize("collection", ["parcels", "permits"])
def test_personal_fields_are_never_served(api, collection: str) -> None:
    layer = next(x for x in load_layers() if x.id == collection)
    body = api.get(f"/collections/{collection}/items", params={"limit": 5}).text
    assert layer.personal
    for field in layer.personal:
        assert field not in body
    queryables = api.get(f"/collections/{collection}/queryables", params={"f": "json"}).text
    for field in layer.personal:
        assert field not in queryables


def test_unknown_item_is_a_404_not_a_500(api) -> None:
    assert api.get("/collections/parcels/items/not-a-number").status_code == 404
    assert api.get("/collections/parcels/items/999999999").status_code == 404


def test_gdal_ogr2ogr_reads_a_bbox_of_the_collection(server, tmp_path, db) -> None:
    bbox = bbox_around(db, "utility.wifi_hotspots", 0.05)
    out = tmp_path / "wifi.geojson"
    subprocess.run(
        [
            "ogr2ogr",
            "-f",
            "GeoJSON",
            str(out),
            f"OAPIF:{server}",
            "wifi_hotspots",
            "-spat",
            *map(str, bbox),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    features = json.loads(out.read_text())["features"]
    expected = db.execute(
        "SELECT count(*) FROM utility.wifi_hotspots_current "
        "WHERE ST_Intersects(geom, ST_MakeEnvelope(%s, %s, %s, %s, 4326))",
        bbox,
    ).fetchone()[0]
    assert len(features) == expected > 0


def test_owslib_lists_collections_and_reads_items(server) -> None:
    client = Features(server)
    ids = {c["id"] for c in client.collections()["collections"]}
    assert {"parcels", "lamps", "flood_zones", "gauges"} <= ids
    items = client.collection_items("gauges", limit=50)
    assert items["numberReturned"] == len(items["features"]) > 0


# -- media types: sdi.api.media.ItemsMedia around pygeoapi ----------------------------------
def media_type(response) -> str:
    return response.headers["content-type"].split(";")[0].strip()


def test_items_and_item_are_served_as_geojson(media_api, db) -> None:
    page = media_api.get("/collections/parcels/items", params={"limit": 2})
    assert page.status_code == 200
    assert media_type(page) == "application/geo+json"
    assert page.json()["type"] == "FeatureCollection"
    as_json = media_api.get("/collections/parcels/items", params={"limit": 2, "f": "json"})
    assert media_type(as_json) == "application/geo+json"
    item_id = page.json()["features"][0]["id"]
    item = media_api.get(f"/collections/parcels/items/{item_id}")
    assert item.status_code == 200
    assert media_type(item) == "application/geo+json"
    assert item.json()["type"] == "Feature"


def test_other_responses_keep_their_media_type(media_api) -> None:
    missing = media_api.get("/collections/parcels/items/999999999")
    assert missing.status_code == 404
    assert media_type(missing) == "application/json"
    bad = media_api.get("/collections/parcels/items", params={"filter": "nope ="})
    assert bad.status_code == 400
    assert media_type(bad) == "application/json"
    assert media_type(media_api.get("/collections/parcels", params={"f": "json"})) == (
        "application/json"
    )
    html = media_api.get("/collections/parcels/items", params={"limit": 1, "f": "html"})
    assert media_type(html) == "text/html"
    ld = media_api.get("/collections/parcels/items", params={"limit": 1, "f": "jsonld"})
    assert media_type(ld) == "application/ld+json"


def test_served_items_are_geojson(api) -> None:
    """The server registers ItemsMedia (sdi/api/app.py)."""
    response = api.get("/collections/parcels/items", params={"limit": 1})
    assert media_type(response) == "application/geo+json"
    item = response.json()["features"][0]["id"]
    assert media_type(api.get(f"/collections/parcels/items/{item}")) == "application/geo+json"
