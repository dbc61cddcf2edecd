"""A pygeoapi feature provider that lets PostGIS do the work.

The GeoJSON of a page is built inside PostGIS (``ST_AsGeoJSON`` + ``json_build_object``),
output CRSs are produced with ``ST_Transform`` there, and the bbox is applied to the raw,
GiST-indexed geometry column. Only the properties listed in the collection's configuration
are ever selected: a column that is not listed (personal data, bookkeeping) cannot leak.

Plugged in by dotted path (``sdi.api.provider.PostGISProvider``) from the generated config.
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool
from pygeoapi.crs import get_srid
from pygeoapi.provider.base import (
    BaseProvider,
    ProviderConnectionError,
    ProviderInvalidQueryError,
    ProviderItemNotFoundError,
    ProviderQueryError,
)
from pyproj import CRS

from sdi.db import database_url

LOGGER = logging.getLogger(__name__)

# PostgreSQL type → JSON Schema (for queryables and the OpenAPI document).
_JSON_TYPES = {
    "smallint": {"type": "integer"},
    "integer": {"type": "integer"},
    "bigint": {"type": "integer"},
    "double precision": {"type": "number"},
    "real": {"type": "number"},
    "numeric": {"type": "number"},
    "boolean": {"type": "boolean"},
    "date": {"type": "string", "format": "date"},
    "timestamp with time zone": {"type": "string", "format": "date-time"},
    "text[]": {"type": "array", "items": {"type": "string"}},
}

_pools: dict[str, ConnectionPool] = {}
_pools_lock = threading.Lock()


def pool() -> ConnectionPool:
    """One bounded, recycled connection pool per worker process."""
    url = database_url()
    with _pools_lock:
        if url not in _pools:
            _pools[url] = ConnectionPool(
                url,
                min_size=1,
                max_size=4,
                max_lifetime=1800,
                max_idle=300,
                timeout=10,
                kwargs={"autocommit": True, "options": "-c statement_timeout=30000"},
                name="sdi-api",
                open=True,
            )
            # Close at exit, or the pool's threads hold the process for 5 s each.
            atexit.register(_pools[url].close)
        return _pools[url]


@lru_cache(maxsize=64)
def _output_crs(uri: str) -> tuple[int, bool, int]:
    """SRID, whether the CRS's first axis is northing/latitude, and coordinate decimals."""
    crs = CRS.from_user_input(uri)
    srid = get_srid(crs) or crs.to_epsg()
    north_first = crs.axis_info[0].direction.lower() in ("north", "south")
    return srid, north_first, 7 if crs.is_geographic else 3


class PostGISProvider(BaseProvider):
    """OGC API Features on a PostGIS table or view, GeoJSON built in the database."""

    def __init__(self, provider_def: dict[str, Any]) -> None:
        super().__init__(provider_def)
        schema, _, table = self.data["table"].partition(".")
        self.table = sql.Identifier(schema, table)
        self.table_name = self.data["table"]
        self.geom_field = provider_def.get("geom_field", "geom")
        self.id_field = provider_def.get("id_field", "id")
        self.storage_srid = int(self.data.get("storage_srid", 4326))
        self._fields = self.get_fields()

    # -- schema ------------------------------------------------------------------------
    def get_fields(self) -> dict[str, dict[str, Any]]:
        return _fields(self.table_name, tuple(self.properties))

    # -- SQL building blocks ------------------------------------------------------------
    def _geometry(self, crs_transform_spec: Any) -> sql.Composable:
        geom = sql.Identifier("t", self.geom_field)
        if crs_transform_spec is None:
            return sql.SQL("ST_AsGeoJSON({}, 7)::json").format(geom)
        srid, north_first, decimals = _output_crs(crs_transform_spec.target_crs_uri)
        expression = sql.SQL("ST_Transform({}, {})").format(geom, sql.Literal(srid))
        if north_first:
            expression = sql.SQL("ST_FlipCoordinates({})").format(expression)
        # options 0: no "crs" member (RFC 7946); the Content-Crs header names the CRS
        return sql.SQL("ST_AsGeoJSON({}, {}, 0)::json").format(expression, sql.Literal(decimals))

    def _feature(
        self, select: list[str], skip_geometry: bool, crs_transform_spec: Any
    ) -> sql.Composable:
        properties = sql.SQL(", ").join(
            sql.SQL("{}, {}").format(sql.Literal(name), sql.Identifier("t", name))
            for name in select
        )
        return sql.SQL(
            "json_build_object('type', 'Feature', 'id', {id}, 'geometry', {geometry}, "
            "'properties', json_build_object({properties}))"
        ).format(
            id=sql.Identifier("t", self.id_field),
            geometry=sql.SQL("NULL") if skip_geometry else self._geometry(crs_transform_spec),
            properties=properties,
        )

    def _check_names(self, names: list[str], what: str) -> None:
        unknown = [n for n in names if n not in self.fields]
        if unknown:
            raise ProviderInvalidQueryError(
                user_msg=f"unknown {what}: {', '.join(unknown)}; "
                f"queryable properties are: {', '.join(self.fields)}"
            )

    def _where(
        self, bbox: list[float], properties: list[tuple[str, str]], datetime_: str | None
    ) -> tuple[sql.Composable, list[Any]]:
        clauses: list[sql.Composable] = []
        params: list[Any] = []
        if bbox:
            if len(bbox) != 4:
                raise ProviderInvalidQueryError(user_msg="bbox must have 4 numbers")
            # The query envelope is built in the storage CRS: the GiST index is used.
            clauses.append(
                sql.SQL("ST_Intersects({}, ST_MakeEnvelope(%s, %s, %s, %s, {}))").format(
                    sql.Identifier("t", self.geom_field), sql.Literal(self.storage_srid)
                )
            )
            params.extend(float(v) for v in bbox)
        self._check_names([name for name, _ in properties], "property")
        for name, value in properties:
            clauses.append(sql.SQL("{}::text = %s").format(sql.Identifier("t", name)))
            params.append(value)
        if datetime_ and self.time_field:
            clauses.append(self._datetime_clause(datetime_, params))
        if not clauses:
            return sql.SQL("TRUE"), params
        return sql.SQL(" AND ").join(clauses), params

    def _datetime_clause(self, datetime_: str, params: list[Any]) -> sql.Composable:
        field = sql.Identifier("t", self.time_field)
        if "/" in datetime_:
            start, end = datetime_.split("/", 1)
            parts = []
            if start not in ("", ".."):
                parts.append(sql.SQL("{} >= %s::timestamptz").format(field))
                params.append(start)
            if end not in ("", ".."):
                parts.append(sql.SQL("{} <= %s::timestamptz").format(field))
                params.append(end)
            return sql.SQL(" AND ").join(parts) if parts else sql.SQL("TRUE")
        params.append(datetime_)
        return sql.SQL("{} = %s::timestamptz").format(field)

    def _order(self, sortby: list[dict[str, str]]) -> sql.Composable:
        self._check_names([s["property"] for s in sortby], "sortby property")
        keys = [
            sql.SQL("{} {}").format(
                sql.Identifier("t", s["property"]),
                sql.SQL("DESC" if s.get("order") == "-" else "ASC"),
            )
            for s in sortby
        ]
        keys.append(sql.Identifier("t", self.id_field))  # stable pages
        return sql.SQL(", ").join(keys)

    def _execute(self, statement: sql.Composable, params: list[Any]) -> list[tuple]:
        try:
            with pool().connection() as conn:
                return conn.execute(statement, params).fetchall()
        except psycopg.errors.QueryCanceled as exc:
            raise ProviderQueryError(user_msg="the query took too long; narrow it") from exc
        except (psycopg.errors.DataException, psycopg.errors.SyntaxError) as exc:
            raise ProviderInvalidQueryError(
                user_msg=f"invalid query value: {exc.diag.message_primary}"
            ) from exc
        except psycopg.OperationalError as exc:
            LOGGER.error("database unavailable: %s", exc)
            raise ProviderConnectionError(user_msg="the warehouse is not reachable") from exc

    # -- OGC API Features ---------------------------------------------------------------
    def query(
        self,
        offset: int = 0,
        limit: int = 10,
        resulttype: str = "results",
        bbox: list[float] | None = None,
        datetime_: str | None = None,
        properties: list[tuple[str, str]] | None = None,
        sortby: list[dict[str, str]] | None = None,
        select_properties: list[str] | None = None,
        skip_geometry: bool = False,
        q: str | None = None,
        filterq: Any = None,
        crs_transform_spec: Any = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        if filterq is not None:
            raise ProviderInvalidQueryError(user_msg="CQL2 filters are not supported yet")
        where, params = self._where(bbox or [], properties or [], datetime_)
        select = list(self.fields)
        if select_properties:
            self._check_names(select_properties, "property")
            select = [p for p in select if p in select_properties]
        matched = self._execute(
            sql.SQL("SELECT count(*) FROM {} t WHERE {}").format(self.table, where), params
        )[0][0]
        if resulttype == "hits":
            return {
                "type": "FeatureCollection",
                "features": [],
                "numberMatched": matched,
                "numberReturned": 0,
            }
        statement = sql.SQL(
            "SELECT coalesce(json_agg(f.feature), '[]'::json)::text FROM ("
            "SELECT {feature} AS feature FROM {table} t WHERE {where} "
            "ORDER BY {order} LIMIT %s OFFSET %s) f"
        ).format(
            feature=self._feature(select, skip_geometry, crs_transform_spec),
            table=self.table,
            where=where,
            order=self._order(sortby or []),
        )
        features = json.loads(self._execute(statement, [*params, int(limit), int(offset)])[0][0])
        return {
            "type": "FeatureCollection",
            "features": features,
            "numberMatched": matched,
            "numberReturned": len(features),
        }

    def get(self, identifier: str, crs_transform_spec: Any = None, **kwargs: Any) -> dict:
        try:
            key = int(identifier)
        except (TypeError, ValueError):
            raise ProviderItemNotFoundError(user_msg=f"no item {identifier!r}") from None
        statement = sql.SQL("SELECT {feature}::text FROM {table} t WHERE {id} = %s").format(
            feature=self._feature(list(self.fields), False, crs_transform_spec),
            table=self.table,
            id=sql.Identifier("t", self.id_field),
        )
        rows = self._execute(statement, [key])
        if not rows:
            raise ProviderItemNotFoundError(user_msg=f"no item {identifier!r}")
        return json.loads(rows[0][0])


@lru_cache(maxsize=128)
def _fields(table: str, published: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """JSON Schema types of the published columns, in the order they are published."""
    with pool().connection() as conn:
        rows = conn.execute(
            """
            SELECT a.attname, format_type(a.atttypid, a.atttypmod)
            FROM pg_attribute a
            WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
            """,
            (table,),
        ).fetchall()
    if not rows:
        raise ProviderConnectionError(user_msg="this collection's table is not available")
    types = {name: _JSON_TYPES.get(kind, {"type": "string"}) for name, kind in rows}
    missing = [p for p in published if p not in types]
    if missing:
        raise ProviderConnectionError(
            user_msg="this collection is misconfigured",
            msg=f"{table} has no column(s) {', '.join(missing)}",
        )
    return {name: dict(types[name]) for name in published}
