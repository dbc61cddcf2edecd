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

import json
import logging
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime as _datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
from psycopg import sql
from pygeoapi.provider.base import (
    BaseProvider,
    ProviderInvalidQueryError,
    ProviderItemNotFoundError,
)

from sdi import sql as sql_files
from sdi.api import bbox as bboxes
from sdi.api import cql, geojson, paging, pgtypes
from sdi.api.bbox import CRS84
from sdi.api.db import columns, connection, provider_error
from sdi.api.geojson import FeatureTexts
from sdi.api.paging import CURSOR_PARAM, Cursor, SortKey
from sdi.db.extents import provinces_of_box
from sdi.db.tables import PROVINCE_COLUMN

LOGGER = logging.getLogger(__name__)

DEFERRED_OFFSET = 1000  # from this offset on (in id order), find the first id, then seek
# The page size of our next links, at least: a client that pages through a result asked for
# 10 at a time (GDAL < 3.8 always asks for 10: its PAGE_SIZE open option, not the OpenAPI
# maximum) is served the rest in pages of this many, not in hundreds of requests.
NEXT_PAGE_LIMIT = 1000


@lru_cache(maxsize=64)
def output_crs(uri: str) -> tuple[int | None, bool, int]:
    """SRID (None: no EPSG code, the geometry goes out as stored), whether the CRS's first
    axis is northing/latitude, and coordinate decimals."""
    from pygeoapi.crs import get_srid
    from pyproj import CRS

    crs = CRS.from_user_input(uri)
    srid = get_srid(crs) or crs.to_epsg()
    north_first = crs.axis_info[0].direction.lower() in ("north", "south")
    return srid, north_first, geojson.DECIMALS if crs.is_geographic else geojson.PROJECTED_DECIMALS


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
        self.file_types: list[str] = []
        # Unknown query parameters reach query() (as properties): that is how `cursor` does.
        self.include_extra_query_parameters = True
        self.filename = None
        self.axes: list[str] = []
        self.crs = self.num_bands = None
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
        self._columns = columns(self.table_name, tuple(self.properties))
        self._fields = {name: pgtypes.json_schema(t) for name, t in self._columns.items()}
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
        column = sql.Identifier("t", self.geom_field)
        if crs_transform_spec is None:
            return geojson.geometry(column)
        srid, north_first, decimals = output_crs(crs_transform_spec.target_crs_uri)
        return geojson.geometry(column, srid, north_first=north_first, decimals=decimals)

    def _feature(
        self, select: list[str], skip_geometry: bool, crs_transform_spec: Any
    ) -> sql.Composable:
        return geojson.feature(
            sql.Identifier("t", self.id_field),
            sql.SQL("NULL") if skip_geometry else self._geometry(crs_transform_spec),
            geojson.columns("t", select),
        )

    def _check_names(self, names: list[str], what: str) -> None:
        unknown = [n for n in names if n not in self._columns]
        if unknown:
            raise ProviderInvalidQueryError(
                user_msg=f"unknown {what}: {', '.join(unknown)}; "
                f"queryable properties are: {', '.join(self._columns)}"
            )

    def where(
        self,
        bbox: list[float],
        properties: list[tuple[str, str]],
        datetime_: str | None,
        filter_node: Any,
    ) -> tuple[sql.Composable, dict[str, Any]]:
        clauses: list[sql.Composable] = []
        params: dict[str, Any] = {}
        if bbox:
            # The query envelope is built in the storage CRS: the GiST index is used.
            try:
                clause, bbox_params = bboxes.condition(
                    sql.Identifier("t", self.geom_field), bbox, self.storage_srid
                )
            except ValueError as exc:
                raise ProviderInvalidQueryError(user_msg=str(exc)) from None
            clauses.append(clause)
            params.update(bbox_params)
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
            clauses.append(self._datetime_clause(self.time_field, datetime_, params))
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

    def _datetime_clause(
        self, time_field: str, datetime_: str, params: dict[str, Any]
    ) -> sql.Composable:
        field = sql.Identifier("t", time_field)
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
            with connection() as conn:
                return self._execute(statement, params, conn)
        try:
            return conn.execute(statement, params).fetchall()
        except psycopg.Error as exc:
            raise provider_error(exc) from exc

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
        where, params = self.where(request.bbox, filters, datetime_, filter_node)
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
        if cursor is not None and cursor.signature != signature:
            cursor = None  # the cursor of another query: the offset alone counts
        after = cursor.keys if cursor is not None and cursor.offset == request.offset else None

        with connection() as conn:
            pruned = self._provinces_of_bbox(conn, request.bbox)
            if pruned is not None:
                prune, prune_params = pruned
                where = sql.SQL(sql.SQL("({}) AND {}").format(where, prune).as_string(None))
                params = {**params, **prune_params}
            if resulttype == "hits":  # an explicit request for the count: counted
                count = sql.SQL("SELECT count(*) FROM {} t WHERE {}").format(self.table, where)
                return {
                    "type": "FeatureCollection",
                    "features": [],
                    "numberMatched": int(self._execute(count, params, conn)[0][0]),
                    "numberReturned": 0,
                }
            if cursor is not None and cursor.matched is not None:  # counted for the first page
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

    def _provinces_of_bbox(
        self, conn: psycopg.Connection, bbox: list[float]
    ) -> tuple[sql.Composable, dict[str, Any]] | None:
        """On a table partitioned by province: ``province_code IN (…)``, the provinces whose
        stored extent the bbox meets (``etl.partition_extents``, grown by a trigger at every
        write, so it holds every row ever stored). The geometry test alone cannot prune
        partitions; with the codes as values the planner scans only those provinces'
        partitions (runtime pruning of a generic plan too). None: nothing to add."""
        base = _province_partitioned(conn, self.table_name)
        if base is None or len(bbox) not in (4, 6) or self.storage_srid != 4326:
            return None
        if len(bbox) == 6:
            bbox = [bbox[0], bbox[1], bbox[3], bbox[4]]
        west, south, east, north = bbox
        if west > east:  # across the antimeridian: not worth it
            return None
        south, north = min(south, north), max(south, north)
        codes = provinces_of_box(conn, base, west, south, east, north)
        if not codes:  # no province has a row there
            return sql.SQL("FALSE"), {}
        column = sql.Identifier("t", PROVINCE_COLUMN)
        placeholders = [sql.Placeholder(f"pv{i}") for i in range(len(codes))]
        clause = sql.SQL("{} IN ({})").format(column, sql.SQL(", ").join(placeholders))
        return clause, {f"pv{i}": code for i, code in enumerate(codes)}

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
        statement = sql_files.query("sdi.api", "page").format(
            where=where, skip=skip, **self._page_parts(request)
        )
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
            counting = sql.SQL("SELECT count(*) FROM {} t WHERE {}").format(self.table, where)
            return rows, int(self._execute(counting, params, conn)[0][0])
        if not rows:  # past the end: there are fewer than `offset`
            return rows, min(estimate, request.offset)
        return rows, max(estimate, request.offset + len(rows))

    def _estimate(self, conn: psycopg.Connection, where: sql.Composable, params: dict) -> int:
        rows = sql.SQL("SELECT 1 FROM {} t WHERE {}").format(self.table, where)
        try:
            return paging.estimate_rows(conn, rows, params)
        except psycopg.Error as exc:
            raise provider_error(exc) from exc

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
        statement = sql_files.query("sdi.api", "page_counted").format(
            where=where, **self._page_parts(request)
        )
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

    def _fetch(self, needed: list[str], province: list[str]) -> sql.Composable:
        """How a counted page's rows are fetched back by id (sql/page_counted.sql)."""
        table, id_ = self.table, sql.Identifier("t", self.id_field)
        bare = sql.Identifier(self.id_field)
        if not province:
            return sql.SQL("JOIN {} t ON {} = k.{}").format(table, id_, bare)
        # A lateral probe per row (OFFSET 0 keeps it one: no hash join over every
        # partition): each probe runs in the row's own province's partition only.
        return sql.SQL(
            "CROSS JOIN LATERAL (SELECT {} FROM {} t WHERE {} = k.{} AND {} = k.{} OFFSET 0) t"
        ).format(
            sql.SQL(", ").join(sql.Identifier("t", c) for c in needed),
            table,
            id_,
            bare,
            sql.Identifier("t", PROVINCE_COLUMN),
            sql.Identifier(PROVINCE_COLUMN),
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
            # A province-partitioned table: the page's rows are fetched back from their own
            # province's partition only (run-time pruning of the join), not probed in all.
            province = [PROVINCE_COLUMN] if _PARTITIONED.get(self.table_name) else []
            spec = _TargetCRS(crs) if crs else None
            composed = {
                "feature": self._feature(list(select), skip_geometry, spec),
                "keys": sql.SQL(", ").join(
                    sql.SQL("{}::text").format(sql.Identifier("t", k)) for k in keys
                ),
                "columns": sql.SQL(", ").join(sql.Identifier("t", c) for c in needed),
                "key_columns": sql.SQL(", ").join(
                    sql.Identifier("t", c) for c in dict.fromkeys([self.id_field, *keys, *province])
                ),
                "fetch": self._fetch(list(needed), province),
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


PACKAGE = "sdi.api"
_PARTITIONED: dict[str, str | None] = {}


def _province_partitioned(conn: psycopg.Connection, table: str) -> str | None:
    """The province-partitioned table a published table or view reads (``land.parcels`` for
    ``land.parcels_current``), or None; cached per process (a table becomes partitioned by a
    migration, which a restart follows)."""
    if table not in _PARTITIONED:
        row = conn.execute(
            sql_files.load(PACKAGE, "province_partitioned"),
            {"table": table, "column": PROVINCE_COLUMN},
        ).fetchone()
        _PARTITIONED[table] = row[0] if row else None
    return _PARTITIONED[table]


def _in_utc(value: str) -> Any:
    """An RFC 3339 date-time as an aware datetime in UTC (PostgreSQL refuses offsets beyond
    ±15:59, RFC 3339 allows ±23:59); anything else as it is, for PostgreSQL to read."""
    try:
        parsed = _datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return value
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else value


def _filter_json(node: Any) -> Any:
    """CQL2 JSON of the filter for the cursor (None if there is none or it cannot be written)."""
    if node is None:
        return None
    try:
        return cql.to_json(node)
    except cql.FilterError:
        return None
