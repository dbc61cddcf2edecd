"""One PostgreSQL type vocabulary (sdi.api.pgtypes), without a database."""

from __future__ import annotations

import pytest
from psycopg import sql

from sdi.api import pgtypes


@pytest.mark.parametrize(
    ("pg_type", "kind", "schema", "mvt"),
    [
        ("smallint", "number", {"type": "integer", "minimum": -32768, "maximum": 32767}, "integer"),
        (
            "bigint",
            "number",
            {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
            "integer",
        ),
        ("double precision", "number", {"type": "number"}, "number"),
        ("numeric", "number", {"type": "number"}, "number"),
        ("boolean", "boolean", {"type": "boolean"}, "boolean"),
        ("date", "date", {"type": "string", "format": "date"}, "datetime"),
        (
            "timestamp with time zone",
            "timestamp",
            {"type": "string", "format": "date-time"},
            "datetime",
        ),
        ("text[]", "array", {"type": "array", "items": {"type": "string"}}, "json"),
        ("jsonb", "text", {"type": "string"}, "json"),
        ("character varying(20)", "text", {"type": "string"}, "string"),
        ("geometry(MultiPolygon,4326)", "geometry", {"type": "string"}, "string"),
    ],
)
def test_one_type_one_reading(pg_type: str, kind: str, schema: dict, mvt: str) -> None:
    assert pgtypes.filter_kind(pg_type) == kind
    assert pgtypes.json_schema(pg_type) == schema
    assert pgtypes.mvt_kind(pg_type) == mvt


def test_schemas_are_copies() -> None:
    pgtypes.json_schema("text[]")["items"]["type"] = "integer"
    pgtypes.mvt_json_schema("date")["format"] = "nonsense"
    assert pgtypes.json_schema("text[]")["items"] == {"type": "string"}
    assert pgtypes.mvt_json_schema("date") == {"type": "string", "format": "date-time"}


@pytest.mark.parametrize(
    ("pg_type", "expected"),
    [
        ("integer", '"t"."v"'),
        ("real", '"t"."v"'),
        ("numeric(10,2)", '"t"."v"::double precision'),
        ("date", 'to_json("t"."v") #>> \'{}\''),
        ("text[]", 'to_json("t"."v")::text'),
        ("text", '"t"."v"::text'),
    ],
)
def test_mvt_values(pg_type: str, expected: str) -> None:
    assert pgtypes.mvt_value(sql.Identifier("t", "v"), pg_type).as_string(None) == expected
