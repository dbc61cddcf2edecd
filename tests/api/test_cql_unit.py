"""CQL2 → SQL (sdi.api.cql) without a database: the SQL text and parameters it writes.

The translation is checked on its rendered SQL (``as_string(None)``: no connection needed)
and its bound parameters; tests/api/test_cql.py asks the same questions of a running server
and of PostGIS. No fixture here touches the database.
"""

from __future__ import annotations

import json
import re

import pytest
from pygeofilter import ast, values
from pygeofilter.parsers.cql2_json import parse as parse_json
from pygeofilter.parsers.cql2_text import parse as parse_text

from sdi.api import cql

QUERYABLES = cql.Queryables(
    columns={
        "commune_code": "text",
        "area_m2": "double precision",
        "sheet_no": "integer",
        "land_use_codes": "text[]",
        "surveyed_on": "date",
        "updated_at": "timestamp with time zone",
        "active": "boolean",
    },
    geometry="geom",
    srid=4326,
)


def translate(text: str) -> tuple[str, dict]:
    condition, params = cql.to_sql(parse_text(text), QUERYABLES)
    return condition.as_string(None), params


def translate_json(document: dict) -> tuple[str, dict]:
    condition, params = cql.to_sql(parse_json(json.dumps(document)), QUERYABLES)
    return condition.as_string(None), params


@pytest.mark.parametrize(
    ("text", "expected_sql", "expected_params"),
    [
        ("commune_code = '06688'", '"t"."commune_code" = %(p0)s', {"p0": "06688"}),
        (
            "area_m2 > 500 AND sheet_no <= 3",
            '(("t"."area_m2" > %(p0)s) AND ("t"."sheet_no" <= %(p1)s))',
            {"p0": 500, "p1": 3},
        ),
        (
            "sheet_no = 1 OR sheet_no = 2 OR sheet_no = 3",
            '(("t"."sheet_no" = %(p0)s) OR ("t"."sheet_no" = %(p1)s) OR ("t"."sheet_no" = %(p2)s))',
            {"p0": 1, "p1": 2, "p2": 3},
        ),
        (
            "commune_code IN ('06688', '06691')",
            '"t"."commune_code" IN (%(p0)s, %(p1)s)',
            {"p0": "06688", "p1": "06691"},
        ),
        (
            "sheet_no BETWEEN 1 AND 3",
            '"t"."sheet_no" BETWEEN %(p0)s AND %(p1)s',
            {"p0": 1, "p1": 3},
        ),
        ("CASEI(commune_code) LIKE 'ha%'", 'lower("t"."commune_code") LIKE %(p0)s', {"p0": "ha%"}),
        ("NOT (active = TRUE)", 'NOT ("t"."active" = %(p0)s)', {"p0": True}),
        ("sheet_no IS NULL", '"t"."sheet_no" IS NULL', {}),
        ("sheet_no + 1 > 2", '("t"."sheet_no" + %(p0)s) > %(p1)s', {"p0": 1, "p1": 2}),
    ],
)
def test_attribute_filters_become_conditions_on_bound_parameters(
    text: str, expected_sql: str, expected_params: dict
) -> None:
    assert translate(text) == (expected_sql, expected_params)


def test_a_text_literal_against_a_date_column_is_cast_to_a_date() -> None:
    rendered, params = translate("surveyed_on > '2024-01-31'")
    assert rendered == '"t"."surveyed_on" > %(p0)s::date'
    assert params == {"p0": "2024-01-31"}


def test_a_temporal_predicate_on_an_instant() -> None:
    rendered, params = translate("updated_at T_AFTER TIMESTAMP('2024-01-01T00:00:00Z')")
    assert rendered == '"t"."updated_at" > %(p0)s::timestamptz'
    assert params["p0"].isoformat() == "2024-01-01T00:00:00+00:00"


def test_a_spatial_predicate_keeps_the_indexed_column_bare() -> None:
    rendered, params = translate(
        "S_INTERSECTS(geometry, POLYGON((107 20, 108 20, 108 21, 107 20)))"
    )
    assert rendered == 'ST_Intersects("t"."geom", ST_GeomFromText(%(p0)s, 4326))'
    assert params == {"p0": "POLYGON ((107 20, 108 20, 108 21, 107 20))"}


def test_a_geometry_in_another_crs_is_transformed_on_the_literal_side() -> None:
    rendered, params = translate_json(
        {
            "op": "s_intersects",
            "args": [
                {"property": "geometry"},
                {
                    "type": "Point",
                    "coordinates": [500000, 2300000],
                    "crs": {
                        "type": "name",
                        "properties": {"name": "http://www.opengis.net/def/crs/EPSG/0/5899"},
                    },
                },
            ],
        }
    )
    assert rendered == (
        'ST_Intersects("t"."geom", ST_Transform(ST_GeomFromText(%(p0)s, 5899), 4326))'
    )
    assert params == {"p0": "POINT (500000 2300000)"}


def test_bbox_in_text_and_json_give_the_same_envelope() -> None:
    from_text = translate("BBOX(geometry, 107, 20, 108, 21)")
    from_json = translate_json(
        {"op": "s_intersects", "args": [{"property": "geometry"}, {"bbox": [107, 20, 108, 21]}]}
    )
    assert from_text == from_json
    assert from_text[1]["p0"] == "POLYGON ((108 20, 108 21, 107 21, 107 20, 108 20))"


def test_an_array_predicate_binds_the_list_with_the_column_type() -> None:
    rendered, params = translate_json(
        {"op": "a_contains", "args": [{"property": "land_use_codes"}, ["ODT", "LUC"]]}
    )
    assert rendered == '"t"."land_use_codes" @> %(p0)s::text[]'
    assert params == {"p0": ["ODT", "LUC"]}


def test_a_value_is_never_spliced_into_the_sql() -> None:
    hostile = "O'Brien'); DROP TABLE land.parcels; --"
    rendered, params = translate_json({"op": "=", "args": [{"property": "commune_code"}, hostile]})
    assert hostile not in rendered and "DROP" not in rendered
    assert params == {"p0": hostile}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nope = 1", "unknown property 'nope'"),
        ("area_m2 = 'abc'", "write the number without quotes"),
        ("area_m2 LIKE 'a%'", "LIKE needs a text property"),
        ("active > TRUE", "booleans can only be compared with = or <>"),
        ("land_use_codes = 'ODT'", "land_use_codes is a array property and cannot be compared"),
        ("land_use_codes = land_use_codes", "use A_EQUALS for arrays"),
        ("BBOX(geometry, 108, 20, 107, 21)", "min ≤ max"),
        ("S_INTERSECTS(geometry, POLYGON((0 0, 1 1, 1 0, 0 1, 0 0)))", "not valid"),
        ("S_INTERSECTS(commune_code, POINT(1 2))", "compares geometries"),
    ],
)
def test_a_wrong_filter_is_a_filter_error_that_says_why(text: str, message: str) -> None:
    with pytest.raises(cql.FilterError, match=re.escape(message)):
        translate(text)


def test_distance_predicates_are_refused() -> None:
    node = ast.DistanceWithin(
        ast.Attribute("geometry"),
        values.Geometry({"type": "Point", "coordinates": [107.0, 21.0]}),
        10,
        "meters",
    )
    with pytest.raises(cql.FilterError, match="DWITHIN"):
        cql.to_sql(node, QUERYABLES)


def test_a_filter_too_large_is_refused_without_recursion() -> None:
    node = ast.Equal(ast.Attribute("sheet_no"), 0)
    for i in range(1, cql.MAX_NODES + 100):  # a chain deeper than Python's recursion limit
        node = ast.Or(node, ast.Equal(ast.Attribute("sheet_no"), i))
    with pytest.raises(cql.FilterError, match="too large"):
        cql.to_sql(node, QUERYABLES)


def test_cql2_json_round_trip_gives_the_same_sql() -> None:
    text = (
        "(area_m2 > 500 OR commune_code IN ('06688', '06691')) AND NOT (sheet_no IS NULL)"
        " AND S_INTERSECTS(geometry, POLYGON((107 20, 108 20, 108 21, 107 20)))"
    )
    node = parse_text(text)
    again = cql.from_json(json.loads(json.dumps(cql.to_json(node))))
    first, second = cql.to_sql(node, QUERYABLES), cql.to_sql(again, QUERYABLES)
    assert first[0].as_string(None) == second[0].as_string(None)
    assert first[1] == second[1]


@pytest.mark.parametrize("document", ["not json", {"op": "nope", "args": [1]}])
def test_invalid_cql2_json_is_a_filter_error(document) -> None:
    with pytest.raises(cql.FilterError, match="invalid CQL2 JSON"):
        cql.from_json(document)


def test_cql2_text_form_of_a_json_filter_parses_back_to_the_same_sql() -> None:
    node = parse_json(
        json.dumps(
            {
                "op": "and",
                "args": [
                    {"op": ">", "args": [{"property": "area_m2"}, 500]},
                    {"op": "like", "args": [{"property": "commune_code"}, "066%"]},
                ],
            }
        )
    )
    text = cql.to_text(node)
    assert translate(text) == (
        cql.to_sql(node, QUERYABLES)[0].as_string(None),
        cql.to_sql(node, QUERYABLES)[1],
    )


def test_a_text_with_a_quote_has_no_cql2_text_form() -> None:
    node = parse_json(json.dumps({"op": "=", "args": [{"property": "commune_code"}, "O'B"]}))
    with pytest.raises(cql.NotText):
        cql.to_text(node)
