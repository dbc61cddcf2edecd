"""The OpenAPI document and the server agree: what one says, the other does.

The fast checks are here; ``test_schemathesis.py`` fuzzes the whole document.
"""

from __future__ import annotations

import json

import pytest

from sdi.api.contract import Contract, parameter_check
from sdi.api.openapi import DATETIME_PATTERN
from tests.support.api import bbox_around, next_link, query_of

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


def ids(body: dict) -> list[int]:
    return [f["id"] for f in body["features"]]


# -- the checks themselves (no server) ---------------------------------------------------------
@pytest.mark.parametrize(
    ("schema", "good", "bad"),
    [
        ({"type": "integer", "minimum": 1, "maximum": 10}, ["1", "10"], ["0", "11", "1.5", ""]),
        ({"type": "number"}, ["1", "-2.5e3", ".5"], ["nan", "inf", "1,2", "x", "1_0"]),
        ({"type": "boolean"}, ["true", "false"], ["null", "1", "True", ""]),
        ({"type": "string", "enum": ["json", "html"]}, ["json"], ["", "JSON", "xml"]),
        ({"type": "string", "pattern": DATETIME_PATTERN},
         ["2024-02-29", "2025-10-01T08:00:00Z", "../2025-01-31T10:00:00+07:00", "2025-01-01/.."],
         ["2025-02-29", "2025-04-31", "5", "2025-10-01T25:00:00Z", "garbage/.."]),
        ({"type": "array", "items": {"type": "number"},
          "oneOf": [{"minItems": 4, "maxItems": 4}, {"minItems": 6, "maxItems": 6}]},
         ["1,2,3,4", "1,2,3,4,5,6"], ["1,2,3", "1,2,3,4,5", "a,b,c,d"]),
        ({"type": "string", "format": "date-time"},
         ["2025-10-01T08:00:00Z", "2025-10-01T08:00:00.5+07:00"], ["2025-10-01", "yesterday"]),
    ],
)  # fmt: skip
def test_parameter_checks(schema: dict, good: list[str], bad: list[str]) -> None:
    check = parameter_check(schema)
    assert [v for v in good if check(v)] == []
    assert [v for v in bad if check(v)] == bad


def test_a_declared_parameter_given_twice_is_refused_and_undeclared_ones_pass() -> None:
    document = {
        "paths": {
            "/collections/{id}/items": {
                "get": {"parameters": [{"name": "f", "in": "query", "schema": {"type": "string"}}]}
            }
        }
    }
    contract = Contract(document)
    assert "more than once" in contract.problem("/collections/x/items", b"f=json&f=html")
    assert contract.problem("/collections/x/items", b"vendor=1&vendor=2&f=json") is None
    assert contract.problem("/healthz", b"f=1&f=2") is None  # not in the document


# -- the server --------------------------------------------------------------------------------
def operation(document: dict, path: str) -> dict:
    return document["paths"][path]["get"]


def parameter(document: dict, op: dict, name: str) -> dict:
    for raw in op["parameters"]:
        if "$ref" in raw:
            raw = document["components"]["parameters"][raw["$ref"].rsplit("/", 1)[-1]]
        if raw.get("name") == name:
            return raw
    raise KeyError(name)


def test_the_document_names_what_the_items_endpoint_serves(api) -> None:
    document = api.get("/openapi", params={"f": "json"}).json()
    items = operation(document, "/collections/parcels/items")
    served = set(items["responses"]["200"]["content"])
    assert {"application/geo+json", "application/ld+json", "text/csv", "text/html"} <= served
    crs = parameter(document, items, "crs")["schema"]["enum"]
    assert CRS84 in crs and "http://www.opengis.net/def/crs/EPSG/0/5899" in crs
    assert parameter(document, items, "cursor")["schema"]["type"] == "string"
    sortby = parameter(document, items, "sortby")["schema"]["items"]["enum"]
    assert "-area_m2" in sortby and "owner_name" not in sortby
    catalogue = operation(document, "/collections/catalogue/items")
    assert "csv" not in parameter(document, catalogue, "f")["schema"]["enum"]
    conformance = operation(document, "/conformance")["responses"]["200"]["content"]
    assert conformance["application/json"]["schema"]["$ref"].endswith("/confClasses")


def test_what_the_document_refuses_is_a_400_naming_the_parameter(api) -> None:
    for params, name in [
        ([("lang", "en-US"), ("lang", "vi-VN")], "lang"),
        ({"limit": "10001"}, "limit"),
        ({"skipGeometry": "null"}, "skipGeometry"),
        ({"crs": "https://example.org/crs"}, "crs"),
        ({"datetime": "2025-04-31"}, "datetime"),
    ]:
        response = api.get("/collections/permits/items", params=params)
        assert response.status_code == 400, (params, response.text)
        body = response.json()
        assert body["code"] == "InvalidParameterValue" and name in body["description"]


def test_a_method_the_document_has_not_is_a_405_for_everyone(api) -> None:
    """PUT on a collection is not a write refused for want of a key: no route takes it. A
    hidden collection, a public one and one that never existed answer alike."""
    answers = set()
    for collection in ("parcels", "permits_register", "no_such_layer_at_all"):
        response = api.put(f"/collections/{collection}", json={})
        assert response.status_code == 405, response.text
        answers.add((response.text, response.headers["allow"]))
    assert len(answers) == 1
    assert api.request("TRACE", "/collections").status_code == 405
    assert api.post("/collections/parcels/items", json={}).status_code == 401  # a real route


def test_bbox_corners_in_any_order_and_across_the_antimeridian(api, db) -> None:
    west, south, east, north = bbox_around(db, "land.parcels", 0.01)
    inside = {"limit": 1000}
    straight = api.get(
        "/collections/parcels/items", params={**inside, "bbox": f"{west},{south},{east},{north}"}
    ).json()
    flipped = api.get(
        "/collections/parcels/items", params={**inside, "bbox": f"{west},{north},{east},{south}"}
    ).json()
    assert ids(straight) and ids(flipped) == ids(straight)
    # west > east in CRS84: the box from `west` eastwards over 180° to `east`: everything
    # east of `west` (the province is far from the antimeridian)
    across = api.get(
        "/collections/parcels/items", params={**inside, "bbox": f"{west},{south},-170,{north}"}
    ).json()
    expected = db.execute(
        "SELECT count(*) FROM land.parcels_current "
        "WHERE ST_Intersects(geom, ST_MakeEnvelope(%s, %s, 180, %s, 4326))",
        (west, south, north),
    ).fetchone()[0]
    assert across["numberMatched"] == expected and expected < straight["numberMatched"] * 100


def test_a_datetime_outside_the_extent_matches_nothing(api) -> None:
    response = api.get("/collections/warning_history/items", params={"datetime": "1900-01-01"})
    assert response.status_code == 200 and response.json()["features"] == []


def test_features_written_as_postgis_wrote_them_equal_the_parsed_ones(api) -> None:
    """The JSON page carries PostGIS's GeoJSON texts unparsed; HTML and JSON-LD parse them."""
    params = {"limit": 5, "sortby": "-area_m2"}
    page = api.get("/collections/parcels/items", params=params)
    assert page.headers["content-type"].startswith("application/geo+json")
    body = page.json()
    assert body["numberReturned"] == 5 == len(body["features"])
    # written as PostGIS wrote them (UTF-8), not re-serialised by Python (which escapes it)
    address = next(
        f["properties"]["address"] for f in body["features"] if f["properties"]["address"]
    )
    assert json.dumps(address, ensure_ascii=False) in page.text
    one = api.get(f"/collections/parcels/items/{body['features'][0]['id']}").json()
    assert one["properties"] == body["features"][0]["properties"]
    ld = api.get("/collections/parcels/items", params={**params, "f": "jsonld"})
    assert [f["@id"].rsplit("/", 1)[-1] for f in json.loads(ld.text)["features"]] == [
        str(i) for i in ids(body)
    ]
    empty = api.get("/collections/parcels/items", params={"f": "jsonld", "bbox": "0,0,0.1,0.1"})
    assert json.loads(empty.text)["type"] == "FeatureCollection"  # valid JSON when empty
    html = api.get("/collections/parcels/items", params={**params, "f": "html"})
    assert html.status_code == 200 and body["features"][0]["properties"]["natural_key"] in html.text


def test_next_links_page_in_large_pages_whatever_the_first_limit(api) -> None:
    """GDAL 3.6 asks for 10 features a page and follows next links: they ask for 1,000."""
    from sdi.api.provider import NEXT_PAGE_LIMIT

    first = api.get("/collections/parcels/items", params={"limit": 10}).json()
    query = query_of(next_link(first))
    assert query["offset"] == "10" and int(query["limit"]) == NEXT_PAGE_LIMIT
    second = api.get(next_link(first)).json()
    assert ids(second)[0] == ids(first)[-1] + 1 and len(ids(second)) == NEXT_PAGE_LIMIT


def test_a_tile_without_f_is_a_tile_and_tile_errors_are_json(api) -> None:
    tiles = api.get("/collections/parcels/tiles", params={"f": "json"}).json()
    assert tiles["tilesets"]
    missing = api.get("/collections/parcels/tiles/WebMercatorQuad/0/0/0")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/json")
    assert missing.json()["code"] == "NotFound"
