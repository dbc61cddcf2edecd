"""GeoJSON features written by PostGIS: the SQL of a feature, and the texts it returns.

Every feature the API serves from the warehouse (``/items`` and ``/items/{id}``, EDR's
``/locations``, the change feed) is built in SQL by :func:`feature` from an id, a geometry
(:func:`geometry`) and an object of properties (:func:`properties`), so the three agree on the
shape of a feature and on its coordinates' precision.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from psycopg import sql

DECIMALS = 7  # of longitudes and latitudes: about a centimetre
PROJECTED_DECIMALS = 3  # of metres


def geometry(
    column: sql.Composable,
    srid: int | None = None,
    *,
    north_first: bool = False,
    decimals: int = DECIMALS,
) -> sql.Composable:
    """``ST_AsGeoJSON`` of a geometry column as ``json``: as stored (CRS84 in the warehouse), or
    transformed to ``srid`` (with its axes swapped where the CRS names northing first).

    >>> geometry(sql.Identifier("t", "geom")).as_string(None)
    'ST_AsGeoJSON("t"."geom", 7)::json'
    >>> geometry(sql.Identifier("geom"), 3857, decimals=3).as_string(None)
    'ST_AsGeoJSON(ST_Transform("geom", 3857), 3, 0)::json'
    """
    if srid is None:
        return sql.SQL("ST_AsGeoJSON({}, {})::json").format(column, sql.Literal(decimals))
    expression = sql.SQL("ST_Transform({}, {})").format(column, sql.Literal(srid))
    if north_first:
        expression = sql.SQL("ST_FlipCoordinates({})").format(expression)
    # options 0: no "crs" member (RFC 7946); the Content-Crs header names the CRS
    return sql.SQL("ST_AsGeoJSON({}, {}, 0)::json").format(expression, sql.Literal(decimals))


def properties(values: Iterable[tuple[str, sql.Composable]]) -> sql.Composable:
    """``json_build_object`` of (name, expression) pairs, in their order.

    >>> properties([("a", sql.Identifier("t", "a"))]).as_string(None)
    'json_build_object(\\'a\\', "t"."a")'
    """
    return sql.SQL("json_build_object({})").format(
        sql.SQL(", ").join(
            sql.SQL("{}, {}").format(sql.Literal(name), value) for name, value in values
        )
    )


def columns(alias: str, names: Iterable[str]) -> sql.Composable:
    """:func:`properties` of columns of one table alias, each under its own name."""
    return properties((name, sql.Identifier(alias, name)) for name in names)


def feature(
    identifier: sql.Composable, geometry_: sql.Composable, properties_: sql.Composable
) -> sql.Composable:
    """A GeoJSON Feature as a ``json`` expression (``NULL`` geometry: ``sql.SQL("NULL")``).

    >>> feature(sql.SQL("id"), sql.SQL("NULL"), sql.SQL("p")).as_string(None)
    "json_build_object('type', 'Feature', 'id', id, 'geometry', NULL, 'properties', p)"
    """
    return sql.SQL(
        "json_build_object('type', 'Feature', 'id', {}, 'geometry', {}, 'properties', {})"
    ).format(identifier, geometry_, properties_)


class FeatureTexts(list):
    """The features of a page as the GeoJSON texts PostGIS wrote, parsed on first use.

    pygeoapi parses nothing of a JSON page: it adds links and serialises the collection with
    ``json.dumps``. Parsing the features' GeoJSON only to write it again costs more than
    PostGIS takes to build it (``docs/api-contract.md``, "Speed");
    :func:`sdi.api.pygeoapi_patches.to_json` writes the
    texts as they are instead. Any other use (HTML, CSV, JSON-LD, ``len``, a subclass's
    post-processing) goes through a list method, which parses them first: the list then
    behaves as a plain list.
    """

    __slots__ = ("_texts",)

    def __init__(self, texts: list[str]) -> None:
        super().__init__()
        self._texts: list[str] | None = texts

    def load(self) -> None:
        if self._texts is not None:
            texts, self._texts = self._texts, None
            if texts:
                list.extend(self, json.loads("[" + ",".join(texts) + "]"))

    def raw(self) -> str | None:
        """The JSON array of the features if nothing has parsed them yet, else None."""
        return None if self._texts is None else "[" + ",".join(self._texts) + "]"

    def __reduce_ex__(self, protocol: Any) -> Any:
        self.load()
        return (list, (list(self),))


def _loading(name: str) -> Any:
    method = getattr(list, name)

    def loaded(self: FeatureTexts, *args: Any, **kwargs: Any) -> Any:
        self.load()
        return method(self, *args, **kwargs)

    loaded.__name__ = name
    return loaded


for _name in (
    "__len__", "__iter__", "__getitem__", "__setitem__", "__delitem__", "__contains__",
    "__reversed__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__add__",
    "__iadd__", "__mul__", "__rmul__", "__imul__", "__repr__", "__copy__", "append", "extend",
    "insert", "pop", "remove", "index", "count", "sort", "reverse", "copy", "clear",
):  # fmt: skip
    if hasattr(list, _name):
        setattr(FeatureTexts, _name, _loading(_name))
