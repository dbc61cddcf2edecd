"""OGC API EDR on PostGIS: the water-level series of the river gauges as CoverageJSON.

Registered on the ``gauges`` collection by its ``edr:`` option. The queries and their limits:
``docs/warnings.md`` ("The gauge series: OGC API EDR"); how they are built:
``docs/internals.md``.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import psycopg
from psycopg import sql
from pygeoapi.provider.base import (
    ProviderInvalidQueryError,
    ProviderItemNotFoundError,
)
from pygeoapi.provider.base_edr import BaseEDRProvider

from sdi import sql as sql_files
from sdi.api import bbox as bboxes
from sdi.api import geojson
from sdi.api.bbox import CRS84
from sdi.api.db import connection, provider_error

LOGGER = logging.getLogger(__name__)

GEOGRAPHIC_CRS = {
    "coordinates": ["x", "y"],
    "system": {"type": "GeographicCRS", "id": CRS84},
}
TEMPORAL_RS = {"coordinates": ["t"], "system": {"type": "TemporalRS", "calendar": "Gregorian"}}
DEFAULT_MAX_VALUES = 100_000
DEFAULT_TOLERANCE_M = 100.0


def _interval(datetime_: str | None) -> tuple[str | None, str | None]:
    """(start, end) of an EDR ``datetime``; None for an open end.

    >>> _interval("2030-06-01T00:00:00Z/.."), _interval("2030-06-01"), _interval(None)
    (('2030-06-01T00:00:00Z', None), ('2030-06-01', '2030-06-01'), (None, None))
    """
    if not datetime_:
        return None, None
    if "/" in datetime_:
        start, end = datetime_.split("/", 1)
        return (None if start in ("", "..") else start), (None if end in ("", "..") else end)
    return datetime_, datetime_


class PostGISEDRProvider(BaseEDRProvider):
    """Time series of point locations (a table of locations, a table of readings) as EDR."""

    def __init__(self, provider_def: dict[str, Any]) -> None:
        # pygeoapi builds a provider per request (and per EDR collection for /collections):
        # no database access and no CRS parsing here.
        self.name = provider_def["name"]
        self.type = provider_def["type"]
        self.data = provider_def["data"]
        self.editable = False
        self.count = False
        self.options = provider_def.get("options")
        self.id_field = self.data.get("location_key", "id")
        self.uri_field = None
        self.x_field = self.y_field = self.z_field = None
        self.time_field = self.data.get("time", "observed_at")
        self.title_field = provider_def.get("title_field")
        # the locations' properties served by /locations: only those listed in layers/
        self.properties = list(provider_def.get("properties", []))
        self.file_types: list[str] = []
        self.include_extra_query_parameters = False
        self.filename = None
        self.axes: list[str] = []
        self.crs = self.num_bands = None
        self.storage_crs = None
        self.parameters: dict[str, dict[str, Any]] = provider_def.get("parameters", {})
        self.max_values = int(provider_def.get("max_values", DEFAULT_MAX_VALUES))
        self.tolerance_m = float(provider_def.get("position_tolerance_m", DEFAULT_TOLERANCE_M))
        self._fields = {
            name: {
                "type": "number",
                "title": spec.get("title", name),
                "description": spec.get("description"),
                "x-ogc-unit": spec.get("unit", ""),
            }
            for name, spec in self.parameters.items()
        }

    def get_fields(self) -> dict[str, dict[str, Any]]:
        return self._fields

    # -- the query types ---------------------------------------------------------------------
    def position(self, wkt: Any = None, **kwargs: Any) -> dict[str, Any]:
        if wkt is None or wkt.geom_type != "Point":
            raise ProviderInvalidQueryError(
                user_msg="coords must be a WKT POINT(lon lat) in CRS84 for a position query"
            )
        where = sql.SQL(
            "ST_DWithin(l.geom::geography, ST_SetSRID(ST_GeomFromText(%(wkt)s), 4326)::geography,"
            " %(tolerance)s)"
        )
        order = sql.SQL(
            "ST_Distance(l.geom::geography, ST_SetSRID(ST_GeomFromText(%(wkt)s), 4326)::geography)"
        )
        params = {"wkt": wkt.wkt, "tolerance": self.tolerance_m}
        found = self._coverages(where, params, order, **kwargs)
        if not found["coverages"]:
            raise ProviderItemNotFoundError(
                user_msg=f"no location within {self.tolerance_m:g} m of {wkt.wkt}; "
                "/locations lists them"
            )
        return found

    def area(self, wkt: Any = None, **kwargs: Any) -> dict[str, Any]:
        if wkt is None or wkt.geom_type not in ("Polygon", "MultiPolygon"):
            raise ProviderInvalidQueryError(
                user_msg="coords must be a WKT POLYGON or MULTIPOLYGON in CRS84 for an area query"
            )
        # a self-intersecting ring is repaired, not refused
        where = sql.SQL(
            "ST_Intersects(l.geom, ST_MakeValid(ST_SetSRID(ST_GeomFromText(%(wkt)s), 4326)))"
        )
        return self._coverages(where, {"wkt": wkt.wkt}, None, **kwargs)

    def locations(
        self,
        location_id: str | None = None,
        bbox: list[float] | None = None,
        limit: int | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        if location_id is not None:
            where = sql.SQL("l.{} = %(location)s").format(sql.Identifier(self.id_field))
            found = self._coverages(where, {"location": location_id}, None, **kwargs)
            if not found["coverages"]:
                raise ProviderItemNotFoundError(
                    user_msg=f"no location {location_id!r}; /locations lists them"
                )
            return found
        return self._location_features(bbox or [], limit)

    # -- SQL ---------------------------------------------------------------------------------
    def _locations_table(self) -> sql.Composable:
        schema, _, table = self.data["locations"].partition(".")
        return sql.Identifier(schema, table)

    def _readings_table(self) -> sql.Composable:
        schema, _, table = self.data["readings"].partition(".")
        return sql.Identifier(schema, table)

    def _selected(self, select_properties: list[str] | None) -> list[str]:
        chosen = [p for p in (select_properties or []) if p]
        unknown = [p for p in chosen if p not in self.parameters]
        if unknown:
            raise ProviderInvalidQueryError(
                user_msg=f"unknown parameter-name {', '.join(unknown)}; "
                f"this collection has: {', '.join(self.parameters)}"
            )
        return chosen or list(self.parameters)

    def _coverages(
        self,
        where: sql.Composable,
        params: dict[str, Any],
        order: sql.Composable | None,
        select_properties: list[str] | None = None,
        datetime_: str | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        chosen = self._selected(select_properties)
        start, end = _interval(datetime_)
        key = sql.Identifier(self.id_field)
        time = sql.Identifier(self.time_field)
        reading_filter = [sql.SQL("r.{key} = l.{key}").format(key=key)]
        if start is not None:
            reading_filter.append(sql.SQL("r.{} >= %(start)s::timestamptz").format(time))
        if end is not None:
            reading_filter.append(sql.SQL("r.{} <= %(end)s::timestamptz").format(time))
        ranges = sql.SQL(", ").join(
            sql.SQL("{}, json_agg(r.{} ORDER BY r.{})").format(
                sql.Literal(name), sql.Identifier(name), time
            )
            for name in chosen
        )
        statement = sql_files.query("sdi.api", "edr_coverages").format(
            key=key,
            time=time,
            locations=self._locations_table(),
            readings=self._readings_table(),
            ranges=ranges,
            reading_filter=sql.SQL(" AND ").join(reading_filter),
            where=where,
            order=order if order is not None else sql.SQL("l.{}").format(key),
        )
        params = {**params, "start": start, "end": end}
        rows = self._fetch(statement, params)
        total = sum(row[3] for row in rows)
        if total > self.max_values:
            raise ProviderInvalidQueryError(
                user_msg=f"the query selects {total} readings, more than the {self.max_values} "
                "a response may carry; narrow datetime (e.g. datetime=2025-10-01T00:00:00Z/..) "
                "or the area"
            )
        return {
            "type": "CoverageCollection",
            "domainType": "PointSeries",
            "parameters": self.get_parameters(chosen),
            "referencing": [GEOGRAPHIC_CRS, TEMPORAL_RS],
            "coverages": [
                {
                    "type": "Coverage",
                    "id": str(location),
                    "domain": {
                        "type": "Domain",
                        "domainType": "PointSeries",
                        "axes": {
                            "x": {"values": [x]},
                            "y": {"values": [y]},
                            "t": {"values": times},
                        },
                    },
                    "ranges": {
                        name: {
                            "type": "NdArray",
                            "dataType": "float",
                            "axisNames": ["t"],
                            "shape": [n],
                            "values": values or [],
                        }
                        for name, values in ranges.items()
                    },
                }
                for location, x, y, n, times, ranges in rows
            ],
        }

    def _location_features(self, bbox: list[float], limit: int | None) -> dict[str, Any]:
        where: sql.Composable = sql.SQL("TRUE")
        params: dict[str, Any] = {}
        if bbox:  # corners in any order, as on /items
            try:
                where, params = bboxes.condition(
                    sql.Identifier("l", "geom"), bboxes.corners_in_order(bbox, CRS84), 4326
                )
            except ValueError as exc:
                raise ProviderInvalidQueryError(user_msg=str(exc)) from None
        key = sql.Identifier(self.id_field)
        feature = geojson.feature(
            sql.Identifier("f", self.id_field),
            geojson.geometry(sql.Identifier("f", "geom")),
            sql.Identifier("f", "properties"),
        )
        statement = sql.SQL(
            "SELECT coalesce(json_agg({feature} ORDER BY f.{key}), '[]')::text "
            "FROM (SELECT l.{key}, l.geom, {properties} AS properties "
            "FROM {locations} l WHERE {where} ORDER BY l.{key} LIMIT %(limit)s) f"
        ).format(
            feature=feature,
            key=key,
            properties=geojson.columns("l", self.properties),
            locations=self._locations_table(),
            where=where,
        )
        params["limit"] = limit or 10_000
        (features,) = self._fetch(statement, params)[0]
        return {"type": "FeatureCollection", "features": json.loads(features)}

    @staticmethod
    def _fetch(statement: sql.Composed, params: dict[str, Any]) -> list[tuple]:
        with connection() as conn:
            try:
                return conn.execute(statement, params).fetchall()
            except psycopg.errors.InternalError_ as exc:  # GEOS: an invalid polygon
                raise ProviderInvalidQueryError(
                    user_msg=f"coords cannot be used: {exc.diag.message_primary}"
                ) from exc
            except psycopg.Error as exc:
                raise provider_error(exc) from exc


_EDR_QUERY = re.compile(r"^/collections/([^/]+)/(position|area|locations)(/\{locId\})?$")


def document(openapi: dict[str, Any], resources: dict[str, Any]) -> None:
    """Make the OpenAPI operations of EDR collections say what this provider answers.

    pygeoapi documents any ``crs`` and only a 200; the answers are CRS84 only, CoverageJSON (the
    locations list too: pygeoapi labels every EDR answer ``application/vnd.cov+json``), 400 for
    a bad parameter and 404 for no location.
    """
    for path, item in (openapi.get("paths") or {}).items():
        match = _EDR_QUERY.match(path)
        resource = resources.get(match.group(1)) if match else None
        if not resource or not any(p.get("type") == "edr" for p in resource.get("providers", [])):
            continue
        operation = (item or {}).get("get") or {}
        edr = next(p for p in resource["providers"] if p.get("type") == "edr")
        names = "|".join(re.escape(name) for name in edr.get("parameters", {}))
        replaced = {
            "crs": {
                "name": "crs",
                "in": "query",
                "required": False,
                "description": "The CRS of the coordinates in the response (CRS84 only).",
                "schema": {"type": "string", "enum": [CRS84]},
            },
            "parameter-name": {
                "name": "parameter-name",
                "in": "query",
                "required": False,
                "description": "Comma-separated parameters to return (default: all): "
                + ", ".join(edr.get("parameters", {})),
                "schema": {"type": "string", "pattern": f"^(?:{names})(?:,(?:{names}))*$"},
            },
        }
        operation["parameters"] = [
            replaced.get(
                parameter.get("$ref", "").rsplit("/", 1)[-1] or parameter.get("name"), parameter
            )
            for parameter in operation.get("parameters", [])
        ]
        responses = operation.setdefault("responses", {})
        ok = {
            "description": "CoverageJSON (the locations list: GeoJSON)",
            "content": {
                "application/vnd.cov+json": {"schema": {"type": "object"}},
                "text/html": {"schema": {"type": "string"}},
            },
        }
        responses["200"] = ok
        responses.setdefault("400", {"$ref": "#/components/responses/InvalidParameter"})
        responses.setdefault("404", {"$ref": "#/components/responses/NotFound"})
