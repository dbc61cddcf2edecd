"""Media types of the items endpoints, around pygeoapi (an ASGI middleware).

Items' JSON relabelled ``application/geo+json``, CQL2 JSON accepted in a GET, a tile request
without ``f`` given the tiles' default, error answers labelled ``application/json``. The
formats are :mod:`sdi.api.formats`'s; why each fix: ``docs/internals.md``.
CSV cells that a spreadsheet would run as a formula are neutralised (:mod:`sdi.api.csv_safe`,
``docs/security.md``).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from sdi.api import csv_safe, formats
from sdi.api.asgi import query_parameters

# JSON as pygeoapi labels it, and as the items routes serve it (sdi.api.formats)
JSON = formats.media_type("json").encode()
GEOJSON = formats.media_type("json", formats.ITEMS).encode()
# Media types of formats pygeoapi keeps on its JSON error bodies.
_FORMAT_TYPES = tuple(media.encode() for media in formats.error_media_types())


class SafeCsvWriter:
    """A ``csv.DictWriter`` whose rows go through :func:`sdi.api.csv_safe.cell`."""

    def __init__(self, writer: Any) -> None:
        self._writer = writer

    def writerow(self, row: dict[str, Any]) -> Any:
        return self._writer.writerow({k: csv_safe.cell(v) for k, v in row.items()})

    def writerows(self, rows: Any) -> None:
        for row in rows:
            self.writerow(row)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)


class ItemsMedia:
    """ASGI middleware: GeoJSON media type out, CQL2 JSON filters in (GET)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _json_errors(send)
        route = formats.route_of(scope.get("path", ""))
        if route == formats.TILE:
            await self.app(tile_default_format(scope), receive, send)
            return
        if route != formats.ITEMS:
            await self.app(scope, receive, send)
            return
        if scope.get("method") == "GET":
            scope, receive = cql2_json_get(scope, receive)

        async def relabel(message: dict) -> None:
            if message["type"] == "http.response.start" and message.get("status") == 200:
                message["headers"] = geojson_headers(message.get("headers", []))
            await send(message)

        await self.app(scope, receive, relabel)


def geojson_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``Content-Type: application/json[; params]`` → ``application/geo+json[; params]``."""
    out = []
    for name, value in headers:
        if name.lower() == b"content-type":
            media, sep, rest = value.partition(b";")
            if media.strip().lower() == JSON:
                value = GEOJSON + sep + rest
        out.append((name, value))
    return out


def tile_default_format(scope: dict) -> dict:
    """A tile request without ``f``: the documented default (``f=mvt``, the only format)."""
    if any(name == "f" for name, _ in query_parameters(scope)):
        return scope
    query = scope.get("query_string", b"")
    default = b"f=" + formats.default_format(formats.TILE).encode()
    return dict(scope, query_string=query + b"&" + default if query else default)


def _json_errors(send: Any) -> Any:
    """A ``send`` that labels error answers ``application/json`` (what their bodies are):
    pygeoapi keeps the media type of the format asked for (JSON-LD, MVT, CSV). HTML error
    pages stay HTML, Starlette's plain-text ones plain (sdi.api.ops rewrites those)."""

    async def relabel(message: dict) -> None:
        if message["type"] == "http.response.start" and message.get("status", 200) >= 400:
            message["headers"] = [
                (name, JSON)
                if name.lower() == b"content-type" and value.startswith(_FORMAT_TYPES)
                else (name, value)
                for name, value in message.get("headers", [])
            ]
        await send(message)

    return relabel


def cql2_json_get(scope: dict, receive: Any) -> tuple[dict, Any]:
    """A GET with ``filter-lang=cql2-json``: the filter as CQL2 text, else as the body."""
    if b"cql2-json" not in scope.get("query_string", b""):
        return scope, receive
    pairs = query_parameters(scope)
    params = dict(pairs)
    if params.get("filter-lang") != "cql2-json" or not params.get("filter"):
        return scope, receive
    from sdi.api import cql

    document = params["filter"]
    try:
        node = cql.from_json(json.loads(document))
        text = cql.to_text(node)
    except (ValueError, cql.FilterError):  # NotText is a ValueError: send the JSON as body
        kept = [(k, v) for k, v in pairs if k != "filter"]
        return _with_query(scope, kept), _body(document.encode())
    rewritten = [
        (k, text if k == "filter" else "cql2-text" if k == "filter-lang" else v) for k, v in pairs
    ]
    return _with_query(scope, rewritten), receive


def _with_query(scope: dict, pairs: list[tuple[str, str]]) -> dict:
    scope = dict(scope)
    scope["query_string"] = urlencode(pairs).encode("latin-1")
    return scope


def _body(data: bytes) -> Any:
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": data, "more_body": False}

    return receive
