"""OGC API Tiles: vector tiles built by PostGIS, over HTTP (real pygeoapi, real PostGIS).

Tiles are decoded with ``mapbox-vector-tile`` and compared with the warehouse: which features,
their ids and published properties, and where their geometries are.
"""

from __future__ import annotations

import json
import statistics
import time
from datetime import datetime

import mapbox_vector_tile
import pytest
import shapely
from psycopg import sql

from sdi.api.tiles import BUFFER, EXTENT, PostGISTileProvider, tile_range
from sdi.layers import load_layers
from sdi.publish.config import build_config

MVT = "application/vnd.mapbox-vector-tile"
WEB_MERCATOR_QUAD = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
HALF = 20037508.342789244  # half the width of the Web Mercator world, metres
# collection → (table, a zoom level it serves)
TILED = {
    "parcels": ("land.parcels_current", 16),
    "buildings": ("construction.buildings_current", 15),
    "lamps": ("utility.street_lamps_current", 12),
    "flood_zones": ("hazard.flood_zones_current", 10),
    "gauges": ("hazard.gauges_current", 8),
}


def layer(collection: str):
    return next(x for x in load_layers() if x.id == collection)


def densest_tile(db, table: str, z: int) -> tuple[int, int, int]:
    """``(y, x, n)``: the tile at zoom z holding the most Hạ Long features of ``table``."""
    size = 2 * HALF / 2**z
    return db.execute(
        f"""
        WITH f AS (
            SELECT ST_Transform(ST_PointOnSurface(t.geom), 3857) AS p FROM {table} t
            JOIN admin.communes_current c USING (commune_code) WHERE c.city = 'ha_long'
        )
        SELECT floor((%(half)s - ST_Y(p)) / %(size)s)::int AS y,
               floor((ST_X(p) + %(half)s) / %(size)s)::int AS x, count(*)
        FROM f GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT 1
        """,
        {"half": HALF, "size": size},
    ).fetchone()


def tile_url(collection: str, z: int, y: int, x: int) -> str:
    return f"/collections/{collection}/tiles/WebMercatorQuad/{z}/{y}/{x}"


def decode(content: bytes, z: int, y: int, x: int, to_3857: bool = False) -> dict:
    """The decoded tile; with ``to_3857`` geometries in Web Mercator metres, else tile units
    (y down, 0..4096 over the tile)."""
    options: dict = {"y_coord_down": True}
    if to_3857:
        size = 2 * HALF / 2**z
        west, north = -HALF + x * size, HALF - y * size

        def transformer(u: float, v: float) -> tuple[float, float]:
            return west + u / EXTENT * size, north - v / EXTENT * size

        options["transformer"] = transformer
    return mapbox_vector_tile.decode(content, default_options=options)


def expected_ids(db, table: str, z: int, y: int, x: int) -> set[int]:
    """Features within the tile and its buffer, as PostGIS sees them (independent query)."""
    rows = db.execute(
        f"SELECT id FROM {table} WHERE ST_Intersects(ST_Transform(geom, 3857), "
        "ST_TileEnvelope(%s, %s, %s, margin => %s))",
        (z, x, y, BUFFER / EXTENT),
    ).fetchall()
    return {r[0] for r in rows}


def same_value(served, stored) -> bool:
    if isinstance(stored, list):  # arrays travel as JSON text
        return json.loads(served) == stored
    if isinstance(stored, str) and isinstance(served, str) and "T" in stored[:11]:
        try:
            return datetime.fromisoformat(served) == datetime.fromisoformat(stored)
        except ValueError:
            pass
    return served == stored


# -- what is offered ---------------------------------------------------------------------
@pytest.mark.parametrize("collection", sorted(TILED))
def test_tilesets_list_offers_web_mercator_quad_vector_tiles(api, collection: str) -> None:
    response = api.get(f"/collections/{collection}/tiles", params={"f": "json"})
    assert response.status_code == 200
    body = response.json()
    assert [(t["tileMatrixSetURI"], t["dataType"]) for t in body["tilesets"]] == [
        (WEB_MERCATOR_QUAD, "vector")
    ]
    templates = [link["href"] for link in body["links"] if link.get("type") == MVT]
    assert templates and templates[0].endswith(
        f"/collections/{collection}/tiles/{{tileMatrixSetId}}/{{tileMatrix}}/{{tileRow}}/"
        "{tileCol}?f=mvt"
    )
    described = api.get(f"/collections/{collection}", params={"f": "json"}).json()
    assert any(link["rel"].endswith("/tilesets-vector") for link in described["links"])


def test_a_collection_without_tiles_says_so(api) -> None:
    response = api.get("/collections/communes/tiles", params={"f": "json"})
    assert response.status_code == 400
    assert response.json()["code"] == "InvalidParameterValue"


def test_tileset_metadata_has_limits_zoom_range_and_published_properties_only(api) -> None:
    parcels = layer("parcels")
    response = api.get("/collections/parcels/tiles/WebMercatorQuad", params={"f": "json"})
    assert response.status_code == 200
    body = response.json()
    assert body["dataType"] == "vector"
    assert body["tileMatrixSetURI"] == WEB_MERCATOR_QUAD
    limits = body["tileMatrixSetLimits"]
    zooms = range(parcels.tiles["min_zoom"], parcels.tiles["max_zoom"] + 1)
    assert [lim["tileMatrix"] for lim in limits] == [str(z) for z in zooms]
    assert zooms[0] == 13
    [tiles_layer] = body["layers"]
    assert tiles_layer["id"] == "parcels"
    assert list(tiles_layer["propertiesSchema"]["properties"]) == list(parcels.properties)
    assert not set(parcels.personal) & set(tiles_layer["propertiesSchema"]["properties"])
    item = next(link for link in body["links"] if link["rel"] == "item")
    assert item["type"] == MVT
    assert item["href"].endswith("/{tileMatrix}/{tileRow}/{tileCol}?f=mvt")
    # the same document without f (what a client that only sends Accept: */* gets)
    assert api.get("/collections/parcels/tiles/WebMercatorQuad").json() == body
    # its own /metadata path, and HTML
    assert api.get("/collections/parcels/tiles/WebMercatorQuad/metadata").status_code == 200
    html = api.get("/collections/parcels/tiles/WebMercatorQuad", params={"f": "html"})
    assert html.status_code == 200 and "text/html" in html.headers["content-type"]


def test_tilejson_describes_zoom_range_and_fields(api) -> None:
    response = api.get("/collections/lamps/tiles/WebMercatorQuad", params={"f": "tilejson"})
    assert response.status_code == 200
    body = response.json()
    assert (body["minzoom"], body["maxzoom"]) == (12, 20)
    assert body["tiles"][0].endswith("/collections/lamps/tiles/WebMercatorQuad/{z}/{y}/{x}?f=mvt")
    [vector_layer] = body["vector_layers"]
    assert vector_layer["id"] == "lamps"
    assert list(vector_layer["fields"]) == list(layer("lamps").properties)
    assert vector_layer["fields"]["power_w"] == "Number"


# -- tiles -------------------------------------------------------------------------------
@pytest.mark.parametrize("collection", sorted(TILED))
def test_tile_over_ha_long_holds_the_features_the_database_holds(api, db, collection) -> None:
    table, z = TILED[collection]
    y, x, dense = densest_tile(db, table, z)
    assert dense >= 1
    response = api.get(tile_url(collection, z, y, x), params={"f": "mvt"})
    assert response.status_code == 200
    assert response.headers["content-type"] == MVT
    tile = decode(response.content, z, y, x)
    assert list(tile) == [collection]
    features = tile[collection]["features"]
    assert tile[collection]["extent"] == EXTENT

    # the features of the tile and its buffer, each once, with its warehouse id
    ids = [f["id"] for f in features]
    assert len(ids) == len(set(ids))
    assert set(ids) == expected_ids(db, table, z, y, x)
    assert len(ids) >= dense

    # the published properties, with the values in the warehouse; nothing else
    published = layer(collection).properties
    columns = sql.SQL(", ").join(map(sql.Identifier, published))
    stored = {
        row[0]: row[1]
        for row in db.execute(
            sql.SQL(
                "SELECT r.id, row_to_json(r) FROM (SELECT id, {} FROM {} WHERE id = ANY(%s)) r"
            ).format(columns, sql.Identifier(*table.split("."))),
            (ids,),
        )
    }
    for feature in features:
        properties = feature["properties"]
        assert set(properties) <= set(published), set(properties) - set(published)
        expected = {k: v for k, v in stored[feature["id"]].items() if k in published}
        for name, value in expected.items():
            if value is None:
                assert name not in properties  # MVT has no null: absent
            else:
                assert same_value(properties[name], value), (feature["id"], name)

    # coordinates inside the tile and its buffer (tile units, y down)
    for feature in features:
        coordinates = shapely.get_coordinates(shapely.geometry.shape(feature["geometry"]))
        assert (coordinates >= -BUFFER).all() and (coordinates <= EXTENT + BUFFER).all()


def test_parcels_personal_fields_are_not_in_tiles(api, db) -> None:
    table, z = TILED["parcels"]
    y, x, _ = densest_tile(db, table, z)
    content = api.get(tile_url("parcels", z, y, x), params={"f": "mvt"}).content
    features = decode(content, z, y, x)["parcels"]["features"]
    assert features
    for feature in features:
        assert "owner_name" not in feature["properties"]
    owners = [r[0] for r in db.execute(f"SELECT owner_name FROM {table} WHERE owner_name > ''")]
    assert owners and not any(owner.encode() in content for owner in owners[:200])


def test_tile_geometries_are_where_the_warehouse_has_them(api, db) -> None:
    """Lamps back-projected from tile units fall on the stored points (within one unit)."""
    table, z = "utility.street_lamps_current", 16
    y, x, _ = densest_tile(db, table, z)
    content = api.get(tile_url("lamps", z, y, x), params={"f": "mvt"}).content
    features = decode(content, z, y, x, to_3857=True)["lamps"]["features"]
    assert features
    stored = dict(
        db.execute(
            f"SELECT id, ST_AsText(ST_Transform(geom, 3857)) FROM {table} WHERE id = ANY(%s)",
            ([f["id"] for f in features],),
        ).fetchall()
    )
    unit = 2 * HALF / 2**z / EXTENT
    for feature in features:
        served = shapely.geometry.shape(feature["geometry"])
        assert served.distance(shapely.from_wkt(stored[feature["id"]])) <= unit


def test_parcel_polygons_cover_the_tile_where_the_warehouse_has_them(api, db) -> None:
    table, z = TILED["parcels"]
    y, x, _ = densest_tile(db, table, z)
    content = api.get(tile_url("parcels", z, y, x), params={"f": "mvt"}).content
    features = decode(content, z, y, x, to_3857=True)["parcels"]["features"]
    stored = dict(
        db.execute(
            f"SELECT id, ST_AsText(ST_Transform(geom, 3857)) FROM {table} WHERE id = ANY(%s)",
            ([f["id"] for f in features],),
        ).fetchall()
    )
    unit = 2 * HALF / 2**z / EXTENT
    size = 2 * HALF / 2**z
    west, north = -HALF + x * size, HALF - y * size
    margin = size * BUFFER / EXTENT
    clip = shapely.box(west - margin, north - size - margin, west + size + margin, north + margin)
    for feature in features:
        served = shapely.geometry.shape(feature["geometry"])
        truth = shapely.from_wkt(stored[feature["id"]]).intersection(clip)
        # clipped and snapped to the 4096 grid: the same shape within a few grid units
        assert served.hausdorff_distance(truth) <= 3 * unit, feature["id"]


def test_an_empty_tile_answers_204(api, db) -> None:
    parcels = layer("parcels")
    z = parcels.tiles["min_zoom"]
    min_col, _, min_row, _ = tile_range((106.4, 20.6, 108.2, 21.7), z)
    assert not expected_ids(db, "land.parcels_current", z, min_row, min_col)
    response = api.get(tile_url("parcels", z, min_row, min_col), params={"f": "mvt"})
    assert response.status_code == 204
    assert response.content == b""


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("parcels/tiles/WebMercatorQuad/12/1806/3265", 404, "NotFound"),  # below min zoom
        ("parcels/tiles/WebMercatorQuad/21/0/0", 404, "NotFound"),  # above max zoom
        ("lamps/tiles/WebMercatorQuad/25/0/0", 404, "NotFound"),  # beyond the matrix set
        ("lamps/tiles/WebMercatorQuad/12/4096/3265", 404, "NotFound"),  # row beyond matrix
        ("lamps/tiles/WebMercatorQuad/12/1806/9999", 404, "NotFound"),  # col beyond matrix
        ("lamps/tiles/WebMercatorQuad/12/0/0", 404, "NotFound"),  # outside the limits
        ("lamps/tiles/WebMercatorQuad/abc/0/0", 400, "InvalidParameterValue"),
        ("lamps/tiles/WebMercatorQuad/12/-1/3265", 400, "InvalidParameterValue"),
        ("lamps/tiles/WebMercatorQuad/12/1806/1e3", 400, "InvalidParameterValue"),
        ("lamps/tiles/WebMercatorQuad/12/99999999999999999999/0", 404, "NotFound"),
        ("lamps/tiles/WorldCRS84Quad/12/1806/3265", 404, "NotFound"),
        ("lamps/tiles/NoSuchSet/12/1806/3265", 404, "NotFound"),
        # no tiles: pygeoapi's own answer (400 NoApplicableCode)
        ("communes/tiles/WebMercatorQuad/12/1806/3265", 400, None),
        ("no_such_collection/tiles/WebMercatorQuad/12/1806/3265", 404, "NotFound"),
    ],
)
def test_bad_tile_requests_are_ogc_exceptions(api, path: str, status: int, code) -> None:
    response = api.get(f"/collections/{path}", params={"f": "mvt"})
    assert response.status_code == status
    body = response.json()
    assert body["description"]
    assert body["code"] == (code or body["code"])


def test_unknown_tileset_metadata_is_404(api) -> None:
    response = api.get("/collections/lamps/tiles/NoSuchSet", params={"f": "json"})
    assert response.status_code == 404
    assert response.json()["code"] == "NotFound"


# -- how it is done ----------------------------------------------------------------------
def test_the_tile_query_uses_the_spatial_index(settings, loaded, db) -> None:
    config = build_config(load_layers(settings), settings)
    definition = next(p for p in config["resources"]["parcels"]["providers"] if p["type"] == "tile")
    provider = PostGISTileProvider(definition)
    table, z = TILED["parcels"]
    y, x, _ = densest_tile(db, table, z)
    db.execute("ANALYZE land.parcels")
    params = {"z": z, "x": x, "y": y, "layer": "parcels", "margin": BUFFER / EXTENT}
    plan = db.execute(sql.SQL("EXPLAIN (FORMAT JSON) ") + provider._statement, params).fetchone()[0]

    def nodes(node: dict):
        yield node
        for child in node.get("Plans", []):
            yield from nodes(child)

    scans = list(nodes(plan[0]["Plan"]))
    # land.parcels is partitioned by province (0012b): the GiST index of Quảng Ninh's partition
    indexes = {n.get("Index Name") for n in scans}
    assert indexes & {"parcels_geom", "parcels_p22_geom_idx"}, plan
    # a sequential scan only of the default partition, empty while every province has its own
    (waiting,) = db.execute("SELECT count(*) FROM land.parcels_default").fetchone()
    seq = {n["Relation Name"] for n in scans if n["Node Type"] == "Seq Scan"}
    assert seq <= {"parcels_default"} and waiting == 0, (seq, waiting)


def test_tiles_are_fast(api, db) -> None:
    table, z = TILED["parcels"]
    y, x, _ = densest_tile(db, table, z)
    timings = {}
    for name, url in {
        "parcels z16": tile_url("parcels", z, y, x),
        "lamps z12": tile_url(
            "lamps", 12, *densest_tile(db, "utility.street_lamps_current", 12)[:2]
        ),
    }.items():
        api.get(url, params={"f": "mvt"})  # warm: connection, plan
        samples = []
        for _ in range(5):
            start = time.perf_counter()
            assert api.get(url, params={"f": "mvt"}).status_code == 200
            samples.append((time.perf_counter() - start) * 1000)
        timings[name] = statistics.median(samples)
    assert all(ms < 500 for ms in timings.values()), timings
