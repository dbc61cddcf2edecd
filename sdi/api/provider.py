"""A pygeoapi feature provider that lets PostGIS do the work.

The GeoJSON of a page is built inside PostGIS (``ST_AsGeoJSON`` + ``json_build_object``),
output CRSs are produced with ``ST_Transform`` there, and the bbox and CQL2 filters are applied
to the raw, GiST-indexed geometry column. Only the properties listed in the collection's
configuration are ever selected: a column that is not listed (personal data, bookkeeping)
cannot leak, and cannot be filtered or sorted on.

Paging is by keyset (``cursor``, see :mod:`sdi.api.paging`) and ``numberMatched`` is exact only
where that is cheap; CQL2 is translated by :mod:`sdi.api.cql`.

Plugged in by dotted path (``sdi.api.provider.PostGISProvider``) from the generated config.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime as _datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool
from pygeoapi.provider.base import (
    BaseProvider,
    ProviderConnectionError,
    ProviderInvalidQueryError,
    ProviderItemNotFoundError,
    ProviderQueryError,
)

from sdi.api import cql, paging
from sdi.api.paging import CURSOR_PARAM, Cursor, SortKey

LOGGER = logging.getLogger(__name__)

# PostgreSQL type → JSON Schema (for queryables and the OpenAPI document).
_JSON_TYPES = {  # integer bounds: a value the column type cannot hold is refused (400), not cast
    "smallint": {"type": "integer", "minimum": -(2**15), "maximum": 2**15 - 1},
    "integer": {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1},
    "bigint": {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
    "double precision": {"type": "number"},
    "real": {"type": "number"},
    "numeric": {"type": "number"},
    "boolean": {"type": "boolean"},
    "date": {"type": "string", "format": "date"},
    "timestamp with time zone": {"type": "string", "format": "date-time"},
    "text[]": {"type": "array", "items": {"type": "string"}},
}
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
DEFERRED_OFFSET = 1000  # from this offset on (in id order), find the first id, then seek
# The page size of our next links, at least: a client that pages through a result asked for
# 10 at a time (GDAL < 3.8 always asks for 10: its PAGE_SIZE open option, not the OpenAPI
# maximum) is served the rest in pages of this many, not in hundreds of requests.
NEXT_PAGE_LIMIT = 1000

_pool: ConnectionPool | None = None
_pool_url: str | None = None
_pool_lock = threading.Lock()


def pool() -> ConnectionPool:
    """One bounded, recycled connection pool per worker process (created on first use)."""
    global _pool, _pool_url
    if _pool is not None:
        return _pool
    from sdi.db import database_url

    with _pool_lock:
        if _pool is None:
            _pool_url = database_url()
            _pool = ConnectionPool(
                _pool_url,
                min_size=1,
                max_size=4,
                max_lifetime=1800,
                max_idle=300,
                timeout=10,
                # No server-side prepared statements: a generic plan cannot see the bbox, and
                # for a spatial page it is up to twice slower than planning each time (0.1 ms).
                # No parallel workers and no JIT: starting a worker or compiling costs 20-100
                # ms, more than a whole page of features (PostGIS rates ST_Intersects so dear
                # that the planner reaches for both on a bbox of a few thousand parcels).
                kwargs={
                    "autocommit": True,
                    "prepare_threshold": None,
                    "options": "-c statement_timeout=30000 -c max_parallel_workers_per_gather=0"
                    " -c jit=off",
                },
                name="sdi-api",
                open=True,
            )
            # Close at exit, or the pool's threads hold the process for 5 s each.
            atexit.register(_pool.close)
        return _pool


@lru_cache(maxsize=64)
def _output_crs(uri: str) -> tuple[int, bool, int]:
    """SRID, whether the CRS's first axis is northing/latitude, and coordinate decimals."""
    from pygeoapi.crs import get_srid
    from pyproj import CRS

    crs = CRS.from_user_input(uri)
    srid = get_srid(crs) or crs.to_epsg()
    north_first = crs.axis_info[0].direction.lower() in ("north", "south")
    return srid, north_first, 7 if crs.is_geographic else 3


_PARTS: dict[tuple, dict[str, sql.Composable]] = {}


@dataclass(frozen=True)
class _TargetCRS:
    """The part of pygeoapi's CrsTransformSpec the SQL depends on."""

    target_crs_uri: str


@dataclass
class _Request:
    """An items request as pygeoapi parsed it (what a page and its links depend on)."""

    offset: int
    limit: int
    bbox: list[float]
    datetime: str | None
    filters: list[tuple[str, str]]
    filter_json: Any
    order: list[SortKey]
    sortby: list[dict[str, str]]
    select: list[str]  # the properties served
    chosen: list[str]  # the `properties` parameter, if any
    skip_geometry: bool
    crs_transform_spec: Any
    q: str | None

    def query_params(self) -> list[tuple[str, str]]:
        """The query string of a link to another page of this request (no offset, cursor)."""
        query: list[tuple[str, str]] = []
        if self.bbox:
            query.append(("bbox", ",".join(repr(float(v)) for v in self.bbox)))
        if self.datetime:
            query.append(("datetime", self.datetime))
        query.extend(self.filters)
        if self.sortby:
            keys = [("-" if s.get("order") == "-" else "") + s["property"] for s in self.sortby]
            query.append(("sortby", ",".join(keys)))
        if self.chosen:
            query.append(("properties", ",".join(self.chosen)))
        if self.skip_geometry:
            query.append(("skipGeometry", "true"))
        if self.crs_transform_spec is not None:
            query.append(("crs", self.crs_transform_spec.target_crs_uri))
        if self.q:
            query.append(("q", self.q))
        query.append(("limit", str(self.limit)))
        return query


class PostGISProvider(BaseProvider):
    """OGC API Features on a PostGIS table or view, GeoJSON built in the database."""

    def __init__(self, provider_def: dict[str, Any]) -> None:
        # pygeoapi builds a provider for every request: keep this cheap (no CRS parsing,
        # column types cached per table).
        self.name = provider_def["name"]
        self.type = provider_def["type"]
        self.data = provider_def["data"]
        self.editable = False
        self.count = True
        self.options = provider_def.get("options")
        self.id_field = provider_def.get("id_field", "id")
        self.uri_field = provider_def.get("uri_field")
        self.x_field = self.y_field = self.z_field = None
        self.time_field = provider_def.get("time_field")
        self.title_field = provider_def.get("title_field")
        self.properties = provider_def.get("properties", [])
        self.file_types = []
        # Unknown query parameters reach query() (as properties): that is how `cursor` does.
        self.include_extra_query_parameters = True
        self.filename = None
        self.axes, self.crs, self.num_bands = [], None, None
        self.storage_crs_uri = provider_def.get("storage_crs", CRS84)

        schema, _, table = self.data["table"].partition(".")
        self.table = sql.Identifier(schema, table)
        self.table_name = self.data["table"]
        self.geom_field = provider_def.get("geom_field", "geom")
        self.storage_srid = int(self.data.get("storage_srid", 4326))
        self.items_url = provider_def.get("items_url")
        self.next_page_limit = int(provider_def.get("next_page_limit", NEXT_PAGE_LIMIT))
        self.exact_count_below = int(
            provider_def.get("exact_count_below", paging.EXACT_COUNT_BELOW)
        )
        self._columns = _columns(self.table_name, tuple(self.properties))
        self._fields = {
            name: dict(_JSON_TYPES.get(t, {"type": "string"})) for name, t in self._columns.items()
        }
        self._queryables = cql.Queryables(
            columns=self._columns, geometry=self.geom_field, srid=self.storage_srid
        )

    @property
    def storage_crs(self):  # parsed only if pygeoapi asks for it
        from pygeoapi.crs import get_crs

        return get_crs(self.storage_crs_uri)

    # -- schema ------------------------------------------------------------------------
    def get_fields(self) -> dict[str, dict[str, Any]]:
        return self._fields

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
        unknown = [n for n in names if n not in self._columns]
        if unknown:
            raise ProviderInvalidQueryError(
                user_msg=f"unknown {what}: {', '.join(unknown)}; "
                f"queryable properties are: {', '.join(self._columns)}"
            )

    def _where(
        self,
        bbox: list[float],
        properties: list[tuple[str, str]],
        datetime_: str | None,
        filter_node: Any,
    ) -> tuple[sql.Composable, dict[str, Any]]:
        clauses: list[sql.Composable] = []
        params: dict[str, Any] = {}
        if bbox:
            if len(bbox) == 6:
                bbox = [bbox[0], bbox[1], bbox[3], bbox[4]]
            if len(bbox) != 4:
                raise ProviderInvalidQueryError(user_msg="bbox must have 4 numbers")

            # The query envelope is built in the storage CRS: the GiST index is used. A first
            # longitude east of the second crosses the antimeridian: two envelopes.
            def envelope(west: sql.Composable, east: sql.Composable) -> sql.Composable:
                return sql.SQL(
                    "ST_Intersects({}, ST_MakeEnvelope({}, %(b1)s, {}, %(b3)s, {}))"
                ).format(
                    sql.Identifier("t", self.geom_field),
                    west,
                    east,
                    sql.Literal(self.storage_srid),
                )

            west, east = sql.Placeholder("b0"), sql.Placeholder("b2")
            if bbox[0] > bbox[2] and self.storage_srid == 4326:
                clauses.append(
                    sql.SQL("({} OR {})").format(
                        envelope(west, sql.Literal(180.0)), envelope(sql.Literal(-180.0), east)
                    )
                )
            else:
                clauses.append(envelope(west, east))
            params.update({f"b{i}": float(v) for i, v in enumerate(bbox)})
        self._check_names([name for name, _ in properties], "property")
        for i, (name, value) in enumerate(properties):
            column, pg_type = sql.Identifier("t", name), self._columns[name]
            placeholder = sql.Placeholder(f"q{i}")
            if "\x00" in value:  # PostgreSQL text cannot hold NUL: nothing can match
                clauses.append(sql.SQL("FALSE"))
                continue
            if pg_type in ("json", "jsonb"):  # no equality on json: compare the text
                clause = sql.SQL("{}::text = {}").format(column, placeholder)
            elif pg_type.endswith("[]"):  # ?land_use_codes=ODT: parcels whose codes hold ODT
                clause = sql.SQL("{} @> ARRAY[{}]::{}").format(
                    column, placeholder, sql.SQL(pg_type)
                )
            else:  # typed comparison: the column's own index can be used
                clause = sql.SQL("{} = {}::{}").format(column, placeholder, sql.SQL(pg_type))
            clauses.append(clause)
            params[f"q{i}"] = _in_utc(value) if pg_type.startswith("timestamp") else value
        if datetime_ and self.time_field:
            clauses.append(self._datetime_clause(datetime_, params))
        if filter_node is not None:
            try:
                condition, filter_params = cql.to_sql(filter_node, self._queryables)
            except cql.FilterError as exc:
                raise ProviderInvalidQueryError(user_msg=f"bad filter: {exc}") from None
            clauses.append(condition)
            params.update(filter_params)
        if not clauses:
            return sql.SQL("TRUE"), params
        return sql.SQL(" AND ").join(clauses), params

    def _datetime_clause(self, datetime_: str, params: dict[str, Any]) -> sql.Composable:
        field = sql.Identifier("t", self.time_field)
        if "/" in datetime_:
            start, end = datetime_.split("/", 1)
            parts = []
            if start not in ("", ".."):
                parts.append(sql.SQL("{} >= %(d0)s::timestamptz").format(field))
                params["d0"] = _in_utc(start)
            if end not in ("", ".."):
                parts.append(sql.SQL("{} <= %(d1)s::timestamptz").format(field))
                params["d1"] = _in_utc(end)
            return sql.SQL(" AND ").join(parts) if parts else sql.SQL("TRUE")
        params["d0"] = _in_utc(datetime_)
        return sql.SQL("{} = %(d0)s::timestamptz").format(field)

    def _order(self, sortby: list[dict[str, str]]) -> list[SortKey]:
        self._check_names([s["property"] for s in sortby], "sortby property")
        keys = [
            SortKey(s["property"], self._columns[s["property"]], s.get("order") == "-")
            for s in sortby
            if s["property"] != self.id_field
        ]
        keys.append(SortKey(self.id_field, "bigint"))  # stable pages, and the keyset's tail
        return keys

    def _execute(self, statement: sql.Composable, params: Any, conn=None) -> list[tuple]:
        if conn is None:
            with _connection() as conn:
                return self._execute(statement, params, conn)
        try:
            return conn.execute(statement, params).fetchall()
        except psycopg.Error as exc:
            raise _provider_error(exc) from exc

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
        token, filters = None, []
        for name, value in properties or []:
            if name == CURSOR_PARAM:
                token = value
            elif name in self._columns:
                filters.append((name, value))
            else:  # an unknown parameter: ignored, as pygeoapi does without our provider
                LOGGER.debug("ignoring query parameter %s", name)
        cursor = Cursor.decode(token) if token else None
        filter_node = filterq
        if filter_node is None and cursor is not None and cursor.filter is not None:
            try:  # a filter sent in a POST body travels in the cursor
                filter_node = cql.from_json(cursor.filter)
            except cql.FilterError:
                raise ProviderInvalidQueryError(user_msg="invalid cursor; start again") from None
        if select_properties:
            self._check_names(select_properties, "property")
        request = _Request(
            offset=int(offset or 0),
            limit=int(limit),
            bbox=list(bbox or []),
            datetime=datetime_,
            filters=filters,
            filter_json=_filter_json(filter_node),
            order=self._order(sortby or []),
            sortby=list(sortby or []),
            select=[p for p in self._columns if not select_properties or p in select_properties],
            chosen=list(select_properties or []),
            skip_geometry=bool(skip_geometry),
            crs_transform_spec=crs_transform_spec,
            q=q,
        )
        where, params = self._where(request.bbox, filters, datetime_, filter_node)
        where = sql.SQL(where.as_string(None))  # rendered once, used by every statement
        filtered = bool(request.bbox or filters or datetime_ or filter_node is not None)
        signature = paging.signature(
            self.table_name,
            request.bbox,
            datetime_,
            sorted(filters),
            [(k.column, k.descending) for k in request.order],
            request.filter_json,
        )
        matching = cursor is not None and cursor.signature == signature
        after = cursor.keys if matching and cursor.offset == request.offset else None

        with _connection() as conn:
            if resulttype == "hits":  # an explicit request for the count: counted
                count = sql.SQL("SELECT count(*) FROM {} t WHERE {}").format(self.table, where)
                return {
                    "type": "FeatureCollection",
                    "features": [],
                    "numberMatched": int(self._execute(count, params, conn)[0][0]),
                    "numberReturned": 0,
                }
            if matching and cursor.matched is not None:  # counted for the first page
                rows, matched = self._page(conn, where, params, request, after), cursor.matched
            else:
                rows, matched = self._page_and_count(conn, where, params, request, filtered)
        more = len(rows) > request.limit
        rows = rows[: request.limit]
        if not more and (rows or request.offset == 0):  # the last page: the count is known
            matched = request.offset + len(rows)

        features = FeatureTexts([row[0] for row in rows])
        content: dict[str, Any] = {
            "type": "FeatureCollection",
            "features": features,
            "numberMatched": matched,
            "numberReturned": len(rows),  # not len(features): that would parse them
        }
        if more and self.items_url:
            last = list(rows[-1][1:]) if rows else None
            content["links"] = self._links(request, signature, matched, last)
        return content

    def _page(
        self,
        conn: psycopg.Connection,
        where: sql.Composable,
        params: dict[str, Any],
        request: _Request,
        after: list[str | None] | None,
    ) -> list[tuple]:
        """Rows of (feature JSON text, sort key values as text…) of one page, plus one more.

        With ``after`` (a cursor's last keys) the page is a seek; otherwise an OFFSET.
        """
        params = dict(params, limit=request.limit + 1)
        if after is not None:
            seek, seek_params = paging.seek_condition(request.order, after)
            where = sql.SQL("({}) AND {}").format(where, seek)
            params.update(seek_params)
            skip = sql.SQL("")
        elif request.offset >= DEFERRED_OFFSET and len(request.order) == 1:
            # A deep offset in id order: find the page's first id with an id-only scan (an
            # index-only scan where the table has an index on the current rows' ids), then
            # seek; the skipped rows are never fetched whole.
            where = sql.SQL(
                "({where}) AND {id} >= (SELECT {id} FROM {table} t WHERE {where} "
                "ORDER BY {id} OFFSET %(offset)s LIMIT 1)"
            ).format(where=where, id=sql.Identifier("t", self.id_field), table=self.table)
            params["offset"] = request.offset
            skip = sql.SQL("")
        else:
            skip = sql.SQL(" OFFSET %(offset)s")
            params["offset"] = request.offset
        # The inner query finds the page (rows skipped by OFFSET are never turned into JSON);
        # the outer one builds the GeoJSON of those rows only.
        statement = sql.SQL(
            "SELECT {feature}::text, {keys} FROM ("
            "SELECT {columns} FROM {table} t WHERE {where} ORDER BY {order} "
            "LIMIT %(limit)s{skip}) t ORDER BY {order}"
        ).format(where=where, skip=skip, **self._page_parts(request))
        return self._execute(statement, params, conn)

    def _page_and_count(
        self,
        conn: psycopg.Connection,
        where: sql.Composable,
        params: dict[str, Any],
        request: _Request,
        filtered: bool,
    ) -> tuple[list[tuple], int]:
        """A page and ``numberMatched``: exact when the planner expects few rows (for a
        filtered request, counted in the same pass as the page), else the planner's estimate.
        """
        estimate = self._estimate(conn, where, params)
        if estimate < self.exact_count_below and filtered:
            rows, count = self._page_counted(conn, where, params, request)
            if count is not None:
                return rows, count
        rows = self._page(conn, where, params, request, None)
        if len(rows) <= request.limit and (rows or request.offset == 0):
            return rows, request.offset + len(rows)  # the last page
        if estimate < self.exact_count_below:
            count = sql.SQL("SELECT count(*) FROM {} t WHERE {}").format(self.table, where)
            return rows, int(self._execute(count, params, conn)[0][0])
        if not rows:  # past the end: there are fewer than `offset`
            return rows, min(estimate, request.offset)
        return rows, max(estimate, request.offset + len(rows))

    def _estimate(self, conn: psycopg.Connection, where: sql.Composable, params: dict) -> int:
        rows = sql.SQL("SELECT 1 FROM {} t WHERE {}").format(self.table, where)
        try:
            return paging.estimate_rows(conn, rows, params)
        except psycopg.Error as exc:
            raise _provider_error(exc) from exc

    def _page_counted(
        self,
        conn: psycopg.Connection,
        where: sql.Composable,
        params: dict[str, Any],
        request: _Request,
    ) -> tuple[list[tuple], int | None]:
        """One pass over the matching rows (the filter is evaluated once): the page and the
        count. None for the count if there are more than twice the exact-count threshold
        (the page would then be wrong: the caller pages the usual way)."""
        cap = 2 * self.exact_count_below
        params = dict(params, limit=request.limit + 1, offset=request.offset, cap=cap)
        # Only the sort keys of the matching rows are kept (not their geometries): the page's
        # rows are then fetched by id (25 % faster for a bbox of ~800 parcels on 1 M).
        statement = sql.SQL(
            "WITH m AS MATERIALIZED (SELECT {key_columns} FROM {table} t WHERE {where} "
            "LIMIT %(cap)s) "
            "SELECT {feature}::text, {keys}, (SELECT count(*) FROM m) FROM ("
            "SELECT * FROM m t ORDER BY {order} LIMIT %(limit)s OFFSET %(offset)s) k "
            "JOIN {table} t ON {id} = k.{bare_id} ORDER BY {order}"
        ).format(where=where, **self._page_parts(request))
        rows = self._execute(statement, params, conn)
        if not rows:
            if request.offset:
                return [], None
            return [], 0
        count = int(rows[0][-1])
        if count >= cap:
            return [], None
        return [row[:-1] for row in rows], count

    def _page_parts(self, request: _Request) -> dict[str, sql.Composable]:
        """The fixed parts of a page's SQL, rendered once per shape of request."""
        crs = request.crs_transform_spec.target_crs_uri if request.crs_transform_spec else None
        return self._rendered_parts(
            tuple(request.select), request.skip_geometry, crs, tuple(request.order)
        )

    def _rendered_parts(
        self, select: tuple, skip_geometry: bool, crs: str | None, order: tuple
    ) -> dict[str, sql.Composable]:
        key = (self.table_name, self.id_field, self.geom_field, select, skip_geometry, crs, order)
        parts = _PARTS.get(key)
        if parts is None:
            geometry = [] if skip_geometry else [self.geom_field]
            keys = [k.column for k in order]
            needed = dict.fromkeys([self.id_field, *select, *geometry, *keys])
            spec = _TargetCRS(crs) if crs else None
            composed = {
                "feature": self._feature(list(select), skip_geometry, spec),
                "keys": sql.SQL(", ").join(
                    sql.SQL("{}::text").format(sql.Identifier("t", k)) for k in keys
                ),
                "columns": sql.SQL(", ").join(sql.Identifier("t", c) for c in needed),
                "key_columns": sql.SQL(", ").join(
                    sql.Identifier("t", c) for c in dict.fromkeys([self.id_field, *keys])
                ),
                "id": sql.Identifier("t", self.id_field),
                "bare_id": sql.Identifier(self.id_field),
                "table": self.table,
                "order": paging.order_by(list(order)),
            }
            parts = {name: sql.SQL(part.as_string(None)) for name, part in composed.items()}
            if len(_PARTS) > 256:
                _PARTS.clear()
            _PARTS[key] = parts
        return parts

    def _links(
        self, request: _Request, signature: str, matched: int, last: list | None
    ) -> list[dict[str, str]]:
        """Our own next (keyset) and prev links; pygeoapi then adds none of its own.

        The query is written back from what pygeoapi parsed: the bbox in the storage CRS
        (so without bbox-crs), the output CRS, and the filter inside the cursor.
        """
        query = request.query_params()

        def href(at: int, cursor: Cursor | None, limit: int = request.limit) -> str:
            params = [("offset", str(at))]
            params += [(k, str(limit) if k == "limit" else v) for k, v in query]
            if cursor is not None:
                params.append((CURSOR_PARAM, cursor.encode()))
            return f"{self.items_url}?{urlencode(params, quote_via=quote, safe=',:/')}"

        after = request.offset + request.limit
        next_cursor = Cursor(signature, after, last, matched, request.filter_json)
        links = [
            {
                "type": "application/geo+json",
                "rel": "next",
                "title": "Items (next)",
                "href": href(after, next_cursor, max(request.limit, self.next_page_limit)),
            }
        ]
        if request.offset > 0:
            back = max(0, request.offset - request.limit)
            back_cursor = None
            if request.filter_json is not None:  # the filter has to travel
                back_cursor = Cursor(signature, back, None, matched, request.filter_json)
            links.append(
                {
                    "type": "application/geo+json",
                    "rel": "prev",
                    "title": "Items (prev)",
                    "href": href(back, back_cursor),
                }
            )
        return links

    def get(self, identifier: str, crs_transform_spec: Any = None, **kwargs: Any) -> dict:
        try:
            key = int(identifier)
        except (TypeError, ValueError):
            raise ProviderItemNotFoundError(user_msg=f"no item {identifier!r}") from None
        if not -(2**63) <= key < 2**63:
            raise ProviderItemNotFoundError(user_msg=f"no item {identifier!r}")
        crs = crs_transform_spec.target_crs_uri if crs_transform_spec else None
        parts = self._rendered_parts(tuple(self._columns), False, crs, ())
        statement = sql.SQL("SELECT {feature}::text FROM {table} t WHERE {id} = %(id)s").format(
            feature=parts["feature"], table=parts["table"], id=sql.Identifier("t", self.id_field)
        )
        rows = self._execute(statement, {"id": key})
        if not rows:
            raise ProviderItemNotFoundError(user_msg=f"no item {identifier!r}")
        return json.loads(rows[0][0])


def _in_utc(value: str) -> Any:
    """An RFC 3339 date-time as an aware datetime in UTC (PostgreSQL refuses offsets beyond
    ±15:59, RFC 3339 allows ±23:59); anything else as it is, for PostgreSQL to read."""
    try:
        parsed = _datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return value
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else value


class FeatureTexts(list):
    """The features of a page as the GeoJSON texts PostGIS wrote, parsed on first use.

    pygeoapi parses nothing of a JSON page: it adds links and serialises the collection with
    ``json.dumps``. Parsing 100 features' GeoJSON only to write it again costs 1.6 ms a page
    (more than PostGIS takes to build it); :func:`to_json` writes the texts as they are
    instead. Any other use (HTML, CSV, JSON-LD, ``len``, a subclass's post-processing) goes
    through a list method, which parses them first: the list then behaves as a plain list.
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


def to_json(dict_: dict, pretty: bool = False) -> str:
    """pygeoapi's ``to_json``, writing unparsed :class:`FeatureTexts` as they are."""
    from pygeoapi.util import json_serial

    features = dict_.get("features") if isinstance(dict_, dict) else None
    raw = features.raw() if isinstance(features, FeatureTexts) else None
    if raw is None:
        return _pygeoapi_to_json(dict_, pretty)
    text = json.dumps(
        {**dict_, "features": []},
        default=json_serial,
        indent=4 if pretty else None,
        separators=(",", ":"),
    ).replace('"features":[]', '"features":' + raw, 1)
    # as pygeoapi does with everything it writes as JSON
    return text.replace("<", "&lt;").replace(">", "&gt;")


def _provider_error(exc: psycopg.Error) -> Exception:
    """The pygeoapi error for a database error: a 400 for what the request got wrong."""
    message = getattr(exc.diag, "message_primary", None) or str(exc)
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return ProviderQueryError(user_msg="the query took too long; narrow it")
    if isinstance(
        exc,
        (
            psycopg.DataError,  # SQLSTATE class 22: a malformed date, a number out of range
            psycopg.errors.SyntaxError,
            psycopg.errors.UndefinedFunction,
        ),
    ):
        return ProviderInvalidQueryError(user_msg=f"invalid query value: {message}")
    if isinstance(exc, psycopg.errors.InternalError_) and (
        "GEOS" in message or "Topology" in message or "geometry" in message.lower()
    ):
        return ProviderInvalidQueryError(
            user_msg=f"the filter's geometry cannot be used: {message}"
        )
    if isinstance(exc, psycopg.OperationalError):
        LOGGER.error("database unavailable: %s", exc)
        return ProviderConnectionError(user_msg="the warehouse is not reachable")
    LOGGER.error("database error: %s", exc)
    return ProviderQueryError(user_msg="the query failed; it has been logged")


@contextmanager
def _connection() -> Iterator[psycopg.Connection]:
    """A pooled connection; an unreachable warehouse is a provider error, not a crash."""
    try:
        with pool().connection() as conn:
            yield conn
    except psycopg.errors.QueryCanceled as exc:
        raise ProviderQueryError(user_msg="the query took too long; narrow it") from exc
    except psycopg.OperationalError as exc:  # includes the pool's timeout
        LOGGER.error("database unavailable: %s", exc)
        raise ProviderConnectionError(user_msg="the warehouse is not reachable") from exc


def _filter_json(node: Any) -> Any:
    """CQL2 JSON of the filter for the cursor (None if there is none or it cannot be written)."""
    if node is None:
        return None
    try:
        return cql.to_json(node)
    except cql.FilterError:
        return None


@lru_cache(maxsize=128)
def _columns(table: str, published: tuple[str, ...]) -> dict[str, str]:
    """PostgreSQL types of the published columns, in the order they are published."""
    with _connection() as conn:
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
    types = dict(rows)
    missing = [p for p in published if p not in types]
    if missing:
        raise ProviderConnectionError(
            user_msg="this collection is misconfigured",
            msg=f"{table} has no column(s) {', '.join(missing)}",
        )
    return {name: types[name] for name in published}


# -- pygeoapi's API layer -------------------------------------------------------------------
@lru_cache(maxsize=32)
def _bbox_transformer(from_uri: str, to_uri: str, always_xy: bool) -> tuple[Any, bool]:
    import pyproj
    from pygeoapi.crs import get_crs

    source, target = get_crs(from_uri), get_crs(to_uri)
    # pyproj ≥ 3.1: Transformer objects are thread-safe (pygeoapi calls from a thread pool).
    transformer = pyproj.Transformer.from_crs(source, target, always_xy=always_xy)
    return transformer, to_uri.rstrip("/").endswith("/3857")


@lru_cache(maxsize=32)
def _longitude_axes(uri: str) -> tuple[bool, ...]:
    """For each axis of a CRS, whether it is a longitude (where west > east means a box
    crossing the antimeridian)."""
    from pygeoapi.crs import get_crs

    crs = get_crs(uri)
    return tuple(
        crs.is_geographic and axis.direction.lower() in ("east", "west") for axis in crs.axis_info
    )


def corners_in_order(bbox: list[float], crs_uri: str) -> list[float]:
    """The bbox with each axis's lower value first; longitudes are kept as given.

    A bbox is two opposite corners; a client that sends them in another order (north before
    south) means the same box. A longitude west > east is a box across the antimeridian
    (OGC API Features 1.0, the bbox parameter), which the provider splits in two.
    """
    half = len(bbox) // 2
    try:
        longitude = _longitude_axes(crs_uri)
    except Exception:  # a CRS pyproj cannot read: pygeoapi reports it when it transforms
        return list(bbox)
    out = list(bbox)
    for i in range(half):
        is_longitude = i < len(longitude) and longitude[i]
        if not is_longitude and out[i] > out[i + half]:
            out[i], out[i + half] = out[i + half], out[i]
    return out


def validate_bbox(value: str | None = None) -> list[float]:
    """pygeoapi's ``validate_bbox`` without its order checks (the order is the CRS's business,
    see :func:`corners_in_order`), and with finite numbers only."""
    if value is None:
        return []
    parts = value.split(",")
    if len(parts) not in (4, 6):
        raise ValueError(
            "bbox should be either 4 values (minx,miny,maxx,maxy) "
            "or 6 values (minx,miny,minz,maxx,maxy,maxz)"
        )
    try:
        bbox = [float(v) for v in parts]
    except ValueError:
        raise ValueError("bbox values must be numbers") from None
    if not all(math.isfinite(v) for v in bbox):
        raise ValueError("bbox values must be finite numbers")
    return bbox


def validate_datetime(resource_def: dict, datetime_: str | None = None) -> str | None:
    """pygeoapi's ``validate_datetime`` without the 400 for a datetime outside the
    collection's temporal extent: such a datetime is valid and matches nothing (the syntax is
    checked against the OpenAPI pattern by :mod:`sdi.api.contract`)."""
    from pygeoapi.api import validate_datetime as pygeoapi_validate_datetime

    return pygeoapi_validate_datetime({}, datetime_)


def transform_bbox(
    bbox: list[float], from_crs: Any, to_crs: Any, always_xy: bool = False
) -> list[float]:
    """pygeoapi's ``transform_bbox`` with the transformer built once per CRS pair.

    pygeoapi 0.24 builds a pyproj Transformer and calls ``to_epsg()`` on the target CRS for
    every request with a ``bbox``; on CRS84 (which has no EPSG code) ``to_epsg()`` searches
    the whole EPSG database: 12–26 ms per request, more than the rest of the request.
    The corners are put in order first (:func:`corners_in_order`).
    """
    if not (isinstance(from_crs, str) and isinstance(to_crs, str)):
        return _pygeoapi_transform_bbox(bbox, from_crs, to_crs, always_xy)
    bbox = corners_in_order(bbox, from_crs)
    if from_crs == to_crs:
        return [float(v) for v in bbox]
    transformer, mercator = _bbox_transformer(from_crs, to_crs, bool(always_xy))
    bbox = list(bbox)
    if mercator:  # as pygeoapi: clip to Web Mercator's latitudes
        bbox = [bbox[0], max(-85.0511, bbox[1]), bbox[2], min(85.0511, bbox[3])]
    half = len(bbox) // 2
    return list(transformer.transform(*bbox[:half]) + transformer.transform(*bbox[half:]))


def _pygeoapi_transform_bbox(*args: Any) -> list[float]:
    from pygeoapi import crs

    return crs.transform_bbox(*args)


def install_pygeoapi_fixes() -> None:
    """Patch pygeoapi 0.24's per-request CRS work in its API layer (call once at start-up).

    :func:`transform_bbox`, :func:`validate_bbox`, :func:`validate_datetime` and
    :func:`to_json` are replaced in ``pygeoapi.api.itemtypes``, where the items handler looks
    them up; the provider itself never parses a CRS per request.
    """
    from pygeoapi import linked_data
    from pygeoapi.api import environmental_data_retrieval, itemtypes

    environmental_data_retrieval.validate_bbox = validate_bbox  # /locations?bbox= as /items
    itemtypes.to_json = to_json
    itemtypes.transform_bbox = transform_bbox
    itemtypes.validate_bbox = validate_bbox
    itemtypes.validate_datetime = validate_datetime
    if getattr(linked_data.render_j2_template, "__module__", "") != __name__:
        linked_data.render_j2_template = _jsonld_renderer(linked_data.render_j2_template)


def _pygeoapi_to_json(dict_: dict, pretty: bool = False) -> str:
    from pygeoapi.util import to_json as pygeoapi_to_json

    return pygeoapi_to_json(dict_, pretty)


_JSONLD_TEMPLATES = ("collections/items/index.jsonld", "collections/items/item.jsonld")


def _jsonld_renderer(render: Any) -> Any:
    """pygeoapi's template renderer, except that the JSON-LD of items is serialised as JSON.

    pygeoapi 0.24's ``index.jsonld`` template writes invalid JSON for an empty page (a
    trailing comma) and neither template escapes quotes in values; the document they are
    given (context + features) is the JSON-LD, so it is dumped as it is.
    """

    def render_j2_template(config: Any, templates: Any, template: str, data: Any, *a: Any):
        if template in _JSONLD_TEMPLATES:
            return json.dumps(data, ensure_ascii=False, default=str)
        return render(config, templates, template, data, *a)

    return render_j2_template


# pygeoapi imports this module (load_plugin) before it transforms the request's bbox, so the
# fix is in place from the first request on, whether or not the app installs it too.
install_pygeoapi_fixes()
