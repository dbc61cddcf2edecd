"""CQL2 filters: pygeoapi's parsed filter translated to SQL by sdi.api.cql, over HTTP.

Every result is checked against the same question asked of PostGIS directly.
"""

from __future__ import annotations

import json

import pytest
from psycopg import sql
from pygeofilter.parsers.cql2_json import parse as parse_json
from pygeofilter.parsers.cql2_text import parse as parse_text

from sdi.api import cql
from tests.support.api import bbox_around

EPSG_5899 = "http://www.opengis.net/def/crs/EPSG/0/5899"


def all_ids(client, collection: str, **params) -> list[int]:
    """Ids of every feature of the request, following next links."""
    response = client.get(f"/collections/{collection}/items", params={"limit": 500, **params})
    assert response.status_code == 200, response.text
    ids = []
    while True:
        body = response.json()
        ids.extend(f["id"] for f in body["features"])
        link = next((x["href"] for x in body["links"] if x["rel"] == "next"), None)
        if link is None or not body["features"]:
            return ids
        response = client.get(link)
        assert response.status_code == 200, response.text


def sql_ids(db, table: str, where: str, params=()) -> list[int]:
    return [r[0] for r in db.execute(f"SELECT id FROM {table} t WHERE {where}", params or None)]


def polygon(box: tuple[float, ...]) -> str:
    x0, y0, x1, y1 = box
    return f"POLYGON(({x0} {y0}, {x1} {y0}, {x1} {y1}, {x0} {y1}, {x0} {y0}))"


ATTRIBUTE_CASES = [
    ("parcels", "land.parcels_current", "commune_code = '06688'", "commune_code = '06688'"),
    (
        "parcels",
        "land.parcels_current",
        "area_m2 > 500 AND sheet_no <= 3",
        "area_m2 > 500 AND sheet_no <= 3",
    ),
    (
        "parcels",
        "land.parcels_current",
        "area_m2 BETWEEN 100 AND 200",
        "area_m2 BETWEEN 100 AND 200",
    ),
    (
        "parcels",
        "land.parcels_current",
        "commune_code IN ('06688', '06760') OR parcel_no = 7",
        "commune_code IN ('06688', '06760') OR parcel_no = 7",
    ),
    ("parcels", "land.parcels_current", "address LIKE 'Tổ 1%'", "address LIKE 'Tổ 1%'"),
    (
        "parcels",
        "land.parcels_current",
        "CASEI(address) LIKE 'tổ 1%'",
        "lower(address) LIKE 'tổ 1%'",
    ),
    (
        "parcels",
        "land.parcels_current",
        "land_use_primary IS NOT NULL",
        "land_use_primary IS NOT NULL",
    ),
    ("parcels", "land.parcels_current", "NOT area_m2 < 300", "NOT area_m2 < 300"),
    (
        "parcels",
        "land.parcels_current",
        "area_m2 * 2 > declared_area_m2 + 100",
        "area_m2 * 2 > declared_area_m2 + 100",
    ),
    ("permits", "construction.permits_current", "floors >= 5", "floors >= 5"),
    (
        "permits",
        "construction.permits_current",
        "issued_on T_AFTER DATE('2023-06-30')",
        "issued_on > DATE '2023-06-30'",
    ),
    (
        "permits",
        "construction.permits_current",
        "issued_on T_BEFORE DATE('2022-01-01')",
        "issued_on < DATE '2022-01-01'",
    ),
    (
        "permits",
        "construction.permits_current",
        "issued_on T_DURING INTERVAL('2022-01-01T00:00:00Z','2023-01-01T00:00:00Z')",
        "issued_on > '2022-01-01T00:00:00Z'::timestamptz "
        "AND issued_on < '2023-01-01T00:00:00Z'::timestamptz",
    ),
    (
        "permits",
        "construction.permits_current",
        "issued_on > DATE('2023-01-01') AND status = 'under_construction'",
        "issued_on > DATE '2023-01-01' AND status = 'under_construction'",
    ),
]


@pytest.mark.parametrize(("collection", "table", "text", "where"), ATTRIBUTE_CASES)
def test_attribute_and_temporal_filters_match_sql(api, db, collection, table, text, where):
    expected = sql_ids(db, table, where)
    served = all_ids(api, collection, filter=text)
    assert expected, "the case should select something"
    assert sorted(served) == sorted(expected)
    assert len(served) == len(set(served))


def test_spatial_filters_on_a_polygon_match_postgis(api, db) -> None:
    """Stock pygeoapi 0.24 answers S_INTERSECTS with a polygon or a BBOX with a 500."""
    box = bbox_around(db, "land.parcels", 0.004)
    envelope = "ST_MakeEnvelope(%s, %s, %s, %s, 4326)"
    for text, function in [
        (f"S_INTERSECTS(geometry, {polygon(box)})", "ST_Intersects(geom, {})"),
        (f"S_INTERSECTS(geometry, BBOX({', '.join(map(str, box))}))", "ST_Intersects(geom, {})"),
        (f"BBOX(geometry, {', '.join(map(str, box))})", "ST_Intersects(geom, {})"),
        (f"S_WITHIN(geometry, {polygon(box)})", "ST_Within(geom, {})"),
        (f"S_DISJOINT(geometry, {polygon(box)}) AND commune_code = '06688'", None),
        (f"S_OVERLAPS(geometry, {polygon(box)})", "ST_Overlaps(geom, {})"),
        (f"S_TOUCHES(geometry, {polygon(box)})", "ST_Touches(geom, {})"),
    ]:
        if function is None:
            where = f"NOT ST_Intersects(geom, {envelope}) AND commune_code = '06688'"
        else:
            where = function.format(envelope)
        expected = sql_ids(db, "land.parcels_current", where, box)
        served = all_ids(api, "parcels", filter=text)
        assert sorted(served) == sorted(expected), text
        if function == "ST_Intersects(geom, {})":
            assert expected, "the test polygon should hold parcels"


def test_spatial_filter_in_another_crs(api, db) -> None:
    """filter-crs: the polygon is given in VN-2000 / TM-3 coordinates."""
    box = bbox_around(db, "utility.street_lamps", 0.02)
    wkt = db.execute(
        "SELECT ST_AsText(ST_Transform(ST_MakeEnvelope(%s, %s, %s, %s, 4326), 5899), 3)", box
    ).fetchone()[0]
    expected = sql_ids(
        db,
        "utility.street_lamps_current",
        "ST_Intersects(geom, ST_Transform(ST_GeomFromText(%s, 5899), 4326))",
        (wkt,),
    )
    served = all_ids(
        api, "lamps", filter=f"S_INTERSECTS(geometry, {wkt})", **{"filter-crs": EPSG_5899}
    )
    assert expected
    assert sorted(served) == sorted(expected)


def test_filters_are_applied_to_the_raw_geometry_column() -> None:
    """The column is never wrapped in a function: the GiST index stays usable."""
    queryables = cql.Queryables({"area_m2": "double precision"}, geometry="geom", srid=4326)
    node = parse_text(
        "S_INTERSECTS(geom, SRID=5899;POINT(435000 2320000)) AND BBOX(geom, 1, 2, 3, 4)"
    )
    condition, params = cql.to_sql(node, queryables)
    text = condition.as_string(None)
    assert 'ST_Intersects("t"."geom", ST_Transform(ST_GeomFromText(%(p0)s, 5899), 4326))' in text
    assert 'ST_Intersects("t"."geom", ST_GeomFromText(%(p1)s, 4326))' in text
    assert params["p0"] == "POINT (435000 2320000)"


def test_values_are_bound_parameters_never_sql_text() -> None:
    queryables = cql.Queryables({"address": "text", "area_m2": "double precision"})
    node = parse_json(
        json.dumps({"op": "=", "args": [{"property": "address"}, "x'); DROP TABLE t; --"]})
    )
    condition, params = cql.to_sql(node, queryables)
    assert condition.as_string(None) == '"t"."address" = %(p0)s'
    assert params == {"p0": "x'); DROP TABLE t; --"}


def test_cql2_json_filters(media_api, db) -> None:
    box = bbox_around(db, "land.parcels", 0.004)
    envelope_sql = "ST_Intersects(geom, ST_MakeEnvelope(%s, %s, %s, %s, 4326))"
    cases = [
        (
            {"op": "s_intersects", "args": [{"property": "geometry"}, {"bbox": list(box)}]},
            envelope_sql,
            box,
        ),
        (
            {"op": "a_contains", "args": [{"property": "land_use_codes"}, ["ODT"]]},
            "land_use_codes @> ARRAY['ODT']",
            (),
        ),
        (
            {
                "op": "and",
                "args": [
                    {"op": "a_overlaps", "args": [{"property": "land_use_codes"}, ["CLN", "LUC"]]},
                    {"op": "=", "args": [{"property": "commune_code"}, "06688"]},
                ],
            },
            "land_use_codes && ARRAY['CLN', 'LUC'] AND commune_code = '06688'",
            (),
        ),
        (
            {
                "op": "not",
                "args": [
                    {
                        "op": "and",
                        "args": [
                            {"op": ">", "args": [{"property": "area_m2"}, 100]},
                            {"op": "<", "args": [{"property": "area_m2"}, 1000]},
                        ],
                    }
                ],
            },
            "NOT (area_m2 > 100 AND area_m2 < 1000)",
            (),
        ),
    ]
    for document, where, params in cases:
        expected = sql_ids(db, "land.parcels_current", where, params)
        served = all_ids(
            media_api,
            "parcels",
            filter=json.dumps(document),
            **{"filter-lang": "cql2-json"},
        )
        assert sorted(served) == sorted(expected), document
        assert expected


def test_cql2_json_temporal_filter(media_api, db) -> None:
    document = {
        "op": "t_intersects",
        "args": [{"property": "issued_on"}, {"interval": ["2023-01-01", ".."]}],
    }
    expected = sql_ids(db, "construction.permits_current", "issued_on >= DATE '2023-01-01'")
    served = all_ids(
        media_api, "permits", filter=json.dumps(document), **{"filter-lang": "cql2-json"}
    )
    assert expected
    assert sorted(served) == sorted(expected)


def test_unknown_property_names_it_and_lists_the_queryables(api) -> None:
    response = api.get("/collections/parcels/items", params={"filter": "owner_name = 'A'"})
    assert response.status_code == 400
    description = response.json()["description"]
    assert "owner_name" in description
    assert "commune_code" in description and "area_m2" in description and "geometry" in description


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("commune_code = 6688", "commune_code is a text property"),
        ("area_m2 = 'big'", "area_m2 is a number property"),
        ("address LIKE 5", "LIKE"),
        ("S_INTERSECTS(area_m2, POINT(107 21))", "geometr"),
        ("S_INTERSECTS(geometry, POLYGON((0 0, 1 1, 1 0, 0 1, 0 0)))", "not valid"),
        ("valid_from T_AFTER 5", "T_AFTER"),
        ("FOO(address) = 'x'", "not supported"),
    ],
)
def test_type_errors_are_400_with_an_explanation(api, text, expected) -> None:
    response = api.get("/collections/parcels/items", params={"filter": text})
    assert response.status_code == 400, response.text
    assert expected in response.json()["description"]


NASTY = [
    "area_m2 > 1e400",
    "valid_from > '2024-13-45'",
    "valid_from T_AFTER TIMESTAMP('2024-01-01T00:00:00Z') AND area_m2 / 0 > 1",
    "S_INTERSECTS(geometry, POINT(1 2",
    "S_CROSSES(geometry, LINESTRING(107 21, 108 22))",
    "S_EQUALS(geometry, GEOMETRYCOLLECTION(POINT(1 2)))",
    "S_CONTAINS(geometry, POINT(1000 1000))",
    "RELATE(geometry, POINT(107 21), 'T********')",
    "RELATE(geometry, POINT(107 21), 'bad')",
    "sheet_no = 99999999999999999999999",
    "address = ''",
    "INCLUDE",
    "EXCLUDE",
    "\"commune_code\" = '06688'",
    "",
    "((((",
]


@pytest.mark.parametrize("text", NASTY)
def test_no_filter_is_a_server_error(api, text) -> None:
    response = api.get("/collections/parcels/items", params={"filter": text, "limit": 5})
    assert response.status_code < 500, response.text


def test_translation_round_trips_through_cql2_json(db) -> None:
    """The cursor carries filters as CQL2 JSON: writing and reading it keeps the rows."""
    queryables = cql.Queryables(
        {
            "area_m2": "double precision",
            "address": "text",
            "valid_from": "timestamp with time zone",
            "land_use_codes": "text[]",
        }
    )
    for text in [
        "area_m2 > 500 AND (address LIKE 'Tổ 1%' OR address IS NULL)",
        "NOT area_m2 BETWEEN 100 AND 400",
        "address NOT IN ('a', 'b') AND area_m2 < 300",
        "valid_from T_DURING INTERVAL('2020-01-01T00:00:00Z', '2099-01-01T00:00:00Z')",
        "CASEI(address) LIKE 'tổ 1%'",
        f"S_INTERSECTS(geometry, BBOX({', '.join(map(str, bbox_around(db, 'land.parcels')))}))",
        f"BBOX(geometry, {', '.join(map(str, bbox_around(db, 'land.parcels')))})",
    ]:
        results = []
        for node in (parse_text(text), parse_json(json.dumps(cql.to_json(parse_text(text))))):
            condition, params = cql.to_sql(node, queryables)
            statement = sql.SQL("SELECT id FROM land.parcels_current t WHERE {}").format(condition)
            results.append(sorted(r[0] for r in db.execute(statement, params)))
        assert results[0] == results[1], text
        assert results[0], text
