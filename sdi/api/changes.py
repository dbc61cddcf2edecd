"""Change feed: what changed in a collection since an instant or an ETL run.

``GET /collections/{id}/changes``: the request, the answer, the watermark that never misses a
change, pages and access control are in ``docs/change-feed.md``.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import psycopg
from psycopg import sql
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from sdi import sql as sql_files
from sdi.api import geojson
from sdi.api.asgi import layer_of_get, send_body, send_error
from sdi.api.db import connection, table_columns
from sdi.api.openapi import table_collections
from sdi.layers import Layer

LOGGER = logging.getLogger("sdi.api.changes")

PATH = re.compile(r"^/collections/([^/]+)/changes/?$")
# An instant with its UTC offset, calendar-exact (the OpenAPI pattern of since and until).
_MONTH_DAY = (
    r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    r"|02-(?:0[1-9]|1[0-9]|2[0-8]))"
)
_LEAP_DAY = r"(?:[1-9][0-9](?:0[48]|[2468][048]|[13579][26])|(?:[2468][048]|[13579][26])00)-02-29"
INSTANT = (
    rf"(?:[1-9][0-9]{{3}}-{_MONTH_DAY}|{_LEAP_DAY})"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,6})?)?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
RUN_ID = r"[0-9]{1,18}"
DEFAULT_LIMIT, MAX_LIMIT = 100, 10_000
_VERSIONED = ("id", "version_id", "valid_from", "valid_to", "run_id")


class ChangeError(ValueError):
    """A request the feed cannot answer; ``status`` and the message go to the client."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def versioned_table(layer: Layer) -> str | None:
    """The table holding every version of a layer's features, by the ``_current`` convention.

    >>> from pathlib import Path
    >>> versioned_table(Layer("x", Path("x"), "x", "", "land.parcels_current", ("a",)))
    'land.parcels'
    """
    table = layer.table or ""
    return table.removesuffix("_current") if table.endswith("_current") else None


def _instant(value: str, name: str) -> datetime:
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise ChangeError(
            f"{name}={value!r} is neither a run id nor an ISO 8601 instant "
            "(e.g. 2025-10-14T18:00:00+07:00 or 2025-10-14T11:00:00Z)"
        ) from None
    if instant.tzinfo is None:
        raise ChangeError(f"{name}={value!r} has no UTC offset: add Z or +07:00")
    return instant


def _parameters(query: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in params and key in ("since", "until", "after", "limit", "f"):
            raise ChangeError(f"parameter {key} is given twice")
        params[key] = value
    if params.get("f", "json") not in ("json", "geojson"):
        raise ChangeError(f"f={params['f']}: the change feed is GeoJSON only (f=json)")
    if not params.get("since"):
        raise ChangeError(
            "missing parameter since: an ISO 8601 instant with offset "
            "(since=2025-10-14T11:00:00Z) or an ETL run id (since=42)"
        )
    for name, low, high in (("limit", 1, MAX_LIMIT), ("after", 0, 2**63 - 1)):
        given = params.get(name)
        if given is not None and not (re.fullmatch(r"[0-9]+", given) and low <= int(given) <= high):
            raise ChangeError(f"{name} must be an integer from {low} to {high}")
    return params


class ChangeFeed:
    """ASGI middleware: ``/collections/{id}/changes`` is answered here, the rest goes on."""

    def __init__(self, app: ASGIApp, layers: list[Layer], public_url: str | None = None) -> None:
        self.app = app
        self.layers = {layer.id: layer for layer in layers}
        self.public_url = (public_url or "").rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = PATH.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        layer = await layer_of_get(
            scope, send, self.layers, match.group(1), "the change feed answers GET only"
        )
        if layer is None:
            return
        head = scope["method"] == "HEAD"
        query = scope.get("query_string", b"").decode("latin-1")
        try:
            document = await run_in_threadpool(self.changes, layer, query, scope)
        except ChangeError as exc:
            await send_error(send, exc.status, "InvalidParameterValue", str(exc), head=head)
            return
        body = json.dumps(document, separators=(",", ":"), default=str).encode()
        await send_body(send, 200, body, "application/geo+json", head=head)

    # -- the feed ------------------------------------------------------------------------------
    def changes(self, layer: Layer, query: str, scope: Scope) -> dict[str, Any]:
        params = _parameters(query)
        table = versioned_table(layer)
        if table is None:
            raise ChangeError(
                f"collection {layer.id} keeps no versions (its source is not a versioned "
                "warehouse table), so it has no change feed; /items gives its current state"
            )
        limit = int(params.get("limit", DEFAULT_LIMIT))
        after = int(params.get("after", 0))
        with connection() as conn:
            self._check_versioned(conn, table, layer)
            since, since_run = self._since(conn, params["since"])
            until = (
                _instant(params["until"], "until")
                if "until" in params
                else sql_files.one(
                    conn.execute(
                        # the oldest transaction still running may commit versions older than now
                        "SELECT least(now(), min(xact_start)) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND xact_start IS NOT NULL "
                        "AND pid <> pg_backend_pid()"
                    )
                )[0]
            )
            if until < since:
                until = since
            rows = conn.execute(
                self._statement(layer, table),
                {"since": since, "until": until, "after": after, "limit": limit + 1},
            ).fetchall()
            runs = conn.execute(
                "SELECT run_id, job, finished_at FROM etl.runs WHERE status = 'succeeded' "
                "AND finished_at > %s AND finished_at <= %s ORDER BY run_id",
                (since, until),
            ).fetchall()
        features = [json.loads(feature) for (_, feature) in rows[:limit]]
        links = self._links(layer, params, since, until, rows, limit)
        return {
            "type": "FeatureCollection",
            "since": since.isoformat(),
            "since_run": since_run,
            "until": until.isoformat(),
            "runs": [
                {"run_id": r, "job": job, "finished_at": at.isoformat()} for r, job, at in runs
            ],
            "numberReturned": len(features),
            "features": features,
            "links": links,
        }

    @staticmethod
    def _check_versioned(conn: psycopg.Connection, table: str, layer: Layer) -> None:
        if not set(_VERSIONED) <= table_columns(conn, table).keys():
            raise ChangeError(
                f"collection {layer.id} keeps no versions, so it has no change feed; "
                "/items gives its current state"
            )

    @staticmethod
    def _since(conn: psycopg.Connection, value: str) -> tuple[datetime, int | None]:
        if re.fullmatch(r"[0-9]{1,18}", value):
            row = conn.execute(
                "SELECT status, finished_at FROM etl.runs WHERE run_id = %s", (int(value),)
            ).fetchone()
            if row is None or row[0] != "succeeded" or row[1] is None:
                state = "does not exist" if row is None else f"is {row[0]}, not succeeded"
                raise ChangeError(
                    f"since={value}: run {value} {state}; `sdi etl runs` lists the runs", 404
                )
            return row[1], int(value)
        return _instant(value, "since"), None

    @staticmethod
    def _statement(layer: Layer, table: str) -> sql.Composed:
        schema, _, name = table.partition(".")
        properties = geojson.properties(
            [
                (
                    "change",
                    sql.SQL(
                        "CASE WHEN s.before IS NULL THEN 'added' "
                        "WHEN s.after IS NULL THEN 'removed' ELSE 'changed' END"
                    ),
                ),
                ("run_id", sql.SQL("v.run_id")),
                ("valid_from", sql.SQL("v.valid_from")),
                ("valid_to", sql.SQL("CASE WHEN s.after IS NULL THEN v.valid_to END")),
                *(
                    (p, sql.Identifier("v", p))
                    for p in layer.published_properties
                    if p not in ("change", "run_id", "valid_from", "valid_to")
                ),
            ]
        )
        feature = geojson.feature(
            sql.SQL("s.id"),
            geojson.geometry(sql.Identifier("v", layer.geometry_field)),
            properties,
        )
        return sql_files.query("sdi.api", "changes").format(
            table=sql.Identifier(schema, name), feature=feature
        )

    def _links(
        self,
        layer: Layer,
        params: dict[str, str],
        since: datetime,
        until: datetime,
        rows: list[tuple],
        limit: int,
    ) -> list[dict[str, str]]:
        base = f"{self.public_url}/collections/{quote(layer.id)}/changes"

        def href(**query: str) -> str:
            return f"{base}?{urlencode(query, safe=':,')}"

        window = {"since": params["since"], "until": until.isoformat(), "limit": str(limit)}
        links = [
            {
                "rel": "self",
                "type": "application/geo+json",
                "href": href(**{k: v for k, v in params.items() if k != "f"}),
            },
            {
                "rel": "poll",
                "type": "application/geo+json",
                "title": "The changes after this window: ask this next",
                "href": href(since=until.isoformat(), limit=str(limit)),
            },
            {
                "rel": "collection",
                "type": "application/json",
                "href": f"{self.public_url}/collections/{quote(layer.id)}",
            },
        ]
        if len(rows) > limit:
            links.append(
                {
                    "rel": "next",
                    "type": "application/geo+json",
                    "href": href(**window, after=str(rows[limit - 1][0])),
                }
            )
        return links


ROUTES = [Route("/collections/{collection_id}/changes", lambda request: None)]  # metrics labels


def openapi_paths(resources: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI paths of the feeds: one per collection served from a ``_current`` view."""
    paths: dict[str, Any] = {}
    for name, feature in table_collections(resources):
        if not str(feature["data"]["table"]).endswith("_current"):
            continue
        paths[f"/collections/{name}/changes"] = {
            "get": {
                "tags": [name],
                "summary": f"Changes of {name} since an instant or an ETL run",
                "description": "Features added, changed or removed between `since` and the "
                "server's watermark `until` (see docs/change-feed.md). Poll with the `poll` "
                "link; page with the `next` link.",
                "operationId": f"getChanges{name.title().replace('_', '')}",
                "parameters": [
                    {
                        "name": "since",
                        "in": "query",
                        "required": True,
                        "description": "ISO 8601 instant with a UTC offset, or an ETL run id",
                        "schema": {"type": "string", "pattern": f"^(?:{INSTANT}|{RUN_ID})$"},
                    },
                    {
                        "name": "until",
                        "in": "query",
                        "required": False,
                        "description": "End of the window (from a `next` link)",
                        "schema": {"type": "string", "pattern": f"^{INSTANT}$"},
                    },
                    {
                        "name": "after",
                        "in": "query",
                        "required": False,
                        "description": "Feature id after which the page starts (from `next`)",
                        "schema": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_LIMIT,
                            "default": DEFAULT_LIMIT,
                        },
                    },
                    {
                        "name": "f",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["json"]},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "GeoJSON features with `change` (added, changed, "
                        "removed), `run_id`, `valid_from`, `valid_to`",
                        "content": {"application/geo+json": {"schema": {"type": "object"}}},
                    },
                    "400": {"$ref": "#/components/responses/InvalidParameter"},
                    "404": {"$ref": "#/components/responses/NotFound"},
                },
            }
        }
    return paths
