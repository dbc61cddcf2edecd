"""PostgreSQL column types, as ``format_type`` writes them, and what the API makes of them.

One vocabulary for every part of the API that reads a column's type:

- :func:`filter_kind`: what a CQL2 filter (:mod:`sdi.api.cql`) may do with the column;
- :func:`json_schema`: the JSON Schema of the value in a GeoJSON feature (queryables, the
  OpenAPI document, and the check of a query parameter's value: an integer outside the
  column type's range is refused with a 400, not cast);
- :func:`mvt_kind`, :func:`mvt_value` and :func:`mvt_json_schema`: how the value travels in
  a vector tile (:mod:`sdi.api.tiles`), which has no dates, arrays or documents.

>>> [filter_kind(t) for t in ("bigint", "numeric(10,2)", "text[]", "timestamp with time zone")]
['number', 'number', 'array', 'timestamp']
>>> json_schema("smallint")
{'type': 'integer', 'minimum': -32768, 'maximum': 32767}
>>> [mvt_kind(t) for t in ("bigint", "numeric(10,2)", "text[]", "timestamp with time zone")]
['integer', 'number', 'json', 'datetime']
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

# Kinds of value a filter expression can have.
NUMBER, TEXT, BOOLEAN, DATE, TIMESTAMP, ARRAY, GEOMETRY = (
    "number",
    "text",
    "boolean",
    "date",
    "timestamp",
    "array",
    "geometry",
)
TEMPORAL = (DATE, TIMESTAMP)

INTEGER_BITS = {"smallint": 16, "integer": 32, "bigint": 64}
FLOATS = ("double precision", "real")


def is_numeric(pg_type: str) -> bool:
    """An integer, floating-point or ``numeric`` (with or without precision) type."""
    return pg_type in INTEGER_BITS or pg_type in FLOATS or pg_type.startswith("numeric")


def filter_kind(pg_type: str) -> str:
    """The filter kind of a column type: number, text, boolean, date, timestamp, array or
    geometry (a CQL2 comparison needs both sides of one kind)."""
    if pg_type.endswith("[]"):
        return ARRAY
    if pg_type.startswith(("geometry", "geography")):
        return GEOMETRY
    if is_numeric(pg_type):
        return NUMBER
    if pg_type == "boolean":
        return BOOLEAN
    if pg_type == "date":
        return DATE
    if pg_type.startswith("timestamp"):
        return TIMESTAMP
    return TEXT


# The value in a GeoJSON feature, where it is not a string. Exact type names: ``numeric(p,s)``
# and ``timestamp without time zone`` are served as strings (a timestamp without an offset is
# not an RFC 3339 date-time); arrays of text are the only arrays the layers publish.
_JSON_SCHEMAS: dict[str, dict[str, Any]] = {
    **{
        name: {"type": "integer", "minimum": -(2 ** (bits - 1)), "maximum": 2 ** (bits - 1) - 1}
        for name, bits in INTEGER_BITS.items()
    },
    "double precision": {"type": "number"},
    "real": {"type": "number"},
    "numeric": {"type": "number"},
    "boolean": {"type": "boolean"},
    "date": {"type": "string", "format": "date"},
    "timestamp with time zone": {"type": "string", "format": "date-time"},
    "text[]": {"type": "array", "items": {"type": "string"}},
}


def json_schema(pg_type: str) -> dict[str, Any]:
    """JSON Schema of a column's value in a GeoJSON feature (a new dict each call)."""
    schema = _JSON_SCHEMAS.get(pg_type, {"type": "string"})
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in schema.items()}


def mvt_kind(pg_type: str) -> str:
    """How a column travels in a vector tile: integer, number, boolean, datetime (ISO 8601
    text), json (JSON text: arrays and documents; MVT has neither) or string."""
    if pg_type in INTEGER_BITS:
        return "integer"
    if pg_type in FLOATS or pg_type.startswith("numeric"):
        return "number"
    if pg_type == "boolean":
        return "boolean"
    if pg_type == "date" or pg_type.startswith(("timestamp", "time ")):
        return "datetime"
    if pg_type.endswith("[]") or pg_type in ("json", "jsonb"):
        return "json"
    return "string"


def mvt_value(column: sql.Composable, pg_type: str) -> sql.Composable:
    """A column as ST_AsMVT encodes it well: numbers and booleans as themselves, dates and
    times in ISO 8601 (as in the GeoJSON), arrays and JSON as JSON text (the convention of
    tippecanoe; ST_AsMVT would spread a jsonb's keys as properties), the rest as text."""
    kind = mvt_kind(pg_type)
    if kind in ("integer", "boolean") or pg_type in FLOATS:
        return column
    if kind == "number":
        return sql.SQL("{}::double precision").format(column)
    if kind == "datetime":
        return sql.SQL("to_json({}) #>> '{{}}'").format(column)
    if kind == "json":
        return sql.SQL("to_json({})::text").format(column)
    return sql.SQL("{}::text").format(column)


_MVT_SCHEMAS: dict[str, dict[str, str]] = {
    "integer": {"type": "integer"},
    "number": {"type": "number"},
    "boolean": {"type": "boolean"},
    "datetime": {"type": "string", "format": "date-time"},
    "json": {"type": "string", "contentMediaType": "application/json"},
    "string": {"type": "string"},
}


def mvt_json_schema(pg_type: str) -> dict[str, str]:
    """JSON Schema of a column's value as a vector tile carries it (a new dict each call)."""
    return dict(_MVT_SCHEMAS[mvt_kind(pg_type)])
