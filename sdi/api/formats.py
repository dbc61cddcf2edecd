"""The output formats of the OGC API, in one table: ``f=`` name → media type, routes, default.

Read by the media middleware (:mod:`sdi.api.media`), the served OpenAPI document
(:mod:`sdi.api.openapi`) and so the contract (:mod:`sdi.api.contract`). What each row says
and how to add a format: ``docs/api-contract.md``, "Adding an output format".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# Kinds of route, told apart by path (the request's, or the document's: pygeoapi writes each
# collection's paths with its id, and a {featureId} template matches like an id).
ITEMS = "items"  # /collections/{id}/items and /collections/{id}/items/{featureId}
TILE = "tile"  # /collections/{id}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}
SCHEMA = "schema"  # /collections/{id}/queryables and /collections/{id}/schema
EDR = "edr"  # /collections/{id}/position, area, locations… (sdi.api.edr)
CHANGES = "changes"  # /collections/{id}/changes (sdi.api.changes)
DOWNLOAD = "download"  # /collections/{id}/download (sdi.api.downloads)
OPENAPI = "openapi"  # the document itself
OTHER = "other"  # every other path: landing page, collections, tilesets, processes, jobs…
ANY = frozenset({ITEMS, TILE, SCHEMA, EDR, CHANGES, OPENAPI, OTHER})  # pygeoapi's and ours
# (DOWNLOAD is not in ANY: downloads have their own formats only)

_ROUTES = (
    (ITEMS, re.compile(r"^/collections/[^/]+/items(?:/[^/]+)?/?$")),
    (TILE, re.compile(r"^/collections/[^/]+/tiles/[^/]+/[^/]+/[^/]+/[^/]+/?$")),
    (SCHEMA, re.compile(r"^/collections/[^/]+/(?:queryables|schema)/?$")),
    (
        EDR,
        re.compile(
            r"^/collections/[^/]+/(?:instances/[^/]+/)?"
            r"(?:position|radius|area|cube|trajectory|corridor|locations(?:/[^/]+)?)/?$"
        ),
    ),
    (CHANGES, re.compile(r"^/collections/[^/]+/changes/?$")),
    (DOWNLOAD, re.compile(r"^/collections/[^/]+/download/?$")),
    (OPENAPI, re.compile(r"^/openapi/?$")),
)

_OBJECT: dict[str, Any] = {"schema": {"type": "object"}}
_TEXT: dict[str, Any] = {"schema": {"type": "string"}}
_BINARY: dict[str, Any] = {"schema": {"type": "string", "format": "binary"}}


@dataclass(frozen=True)
class Format:
    """One output format on some kinds of route."""

    name: str  # the f= value
    media_type: str  # the Content-Type of a 200 answer in this format
    routes: frozenset[str]  # where it is served (where the operation's f offers it)
    default: bool = False  # what a request without f gets on those routes
    # The OpenAPI media type object of a 200 answer, written into the document where it is
    # missing; None: the schema pygeoapi (or our module) gives the answer's other media types.
    content: dict[str, Any] | None = None
    # on items routes, only for these provider types (feature, record; None: any)
    providers: frozenset[str] | None = None


# The first row matching a name and a kind of route wins.
FORMATS: tuple[Format, ...] = (
    # JSON is the default wherever it is served; what it is depends on the route:
    # items: pygeoapi labels them application/json, sdi.api.media relabels (OGC API Features)
    Format("json", "application/geo+json", frozenset({ITEMS, CHANGES}), default=True),
    Format(
        "json",
        "application/vnd.oai.openapi+json;version=3.0",
        frozenset({OPENAPI}),
        default=True,
        content=_OBJECT,
    ),
    Format("json", "application/schema+json", frozenset({SCHEMA}), default=True),
    Format("json", "application/vnd.cov+json", frozenset({EDR}), default=True),  # CoverageJSON
    Format("json", "application/json", frozenset({OTHER}), default=True),
    Format("html", "text/html", ANY - {TILE, CHANGES}, content=_TEXT),
    Format("jsonld", "application/ld+json", frozenset({ITEMS, EDR, OTHER}), content=_OBJECT),
    # a catalogue's records have no CSV form
    Format(
        "csv",
        "text/csv",
        frozenset({ITEMS, EDR}),
        content=_TEXT,
        providers=frozenset({"feature"}),
    ),
    Format(
        "mvt",
        "application/vnd.mapbox-vector-tile",
        frozenset({TILE}),
        default=True,
        content=_BINARY,
    ),
    # downloads (sdi.api.downloads): files, as attachments; the media types are those of the
    # collections' enclosure links (sdi.publish.config.DOWNLOAD_FORMATS)
    Format(
        "gpkg",
        "application/geopackage+sqlite3",
        frozenset({DOWNLOAD}),
        default=True,
        content=_BINARY,
    ),
    Format("shp", "application/zip", frozenset({DOWNLOAD}), content=_BINARY),
    Format("csv", "text/csv", frozenset({DOWNLOAD}), content=_TEXT),
    Format("geojson", "application/geo+json", frozenset({DOWNLOAD}), content=_OBJECT),
)


def route_of(path: str) -> str:
    """The kind of route of a request path or a documented path.

    >>> route_of("/collections/lamps/items/{featureId}"), route_of("/collections/lamps")
    ('items', 'other')
    >>> route_of("/collections/lamps/tiles/WebMercatorQuad/14/6000/13000")
    'tile'
    """
    for kind, regex in _ROUTES:
        if regex.match(path):
            return kind
    return OTHER


def find(name: str, route: str, provider: str | None = None) -> Format | None:
    """The format ``f=name`` on a route of this kind (None: not served there).

    >>> find("json", ITEMS).media_type, find("json", OTHER).media_type
    ('application/geo+json', 'application/json')
    >>> find("csv", ITEMS, "record") is None, find("jsonld", SCHEMA) is None
    (True, True)
    """
    for fmt in FORMATS:
        if fmt.name != name or route not in fmt.routes:
            continue
        if route == ITEMS and provider and fmt.providers and provider not in fmt.providers:
            continue
        return fmt
    return None


def default_format(route: str) -> str:
    """The ``f`` a request without one gets on a route of this kind.

    >>> default_format(TILE), default_format(ITEMS)
    ('mvt', 'json')
    """
    return next(fmt.name for fmt in FORMATS if fmt.default and route in fmt.routes)


def served_on(route: str) -> list[Format]:
    """The formats of a route of this kind, in table order.

    >>> [fmt.media_type for fmt in served_on(OPENAPI)]
    ['application/vnd.oai.openapi+json;version=3.0', 'text/html']
    """
    return [fmt for fmt in FORMATS if route in fmt.routes]


def media_type(name: str, route: str = OTHER) -> str:
    """The media type of ``f=name`` on a route of this kind (as pygeoapi labels it on OTHER).

    >>> media_type("json"), media_type("json", ITEMS)
    ('application/json', 'application/geo+json')
    """
    fmt = find(name, route)
    if fmt is None:
        raise KeyError(f"no output format {name!r} on {route} routes (sdi.api.formats)")
    return fmt.media_type


def error_media_types() -> tuple[str, ...]:
    """Media types pygeoapi puts on its JSON error bodies: those of the formats other than
    JSON and HTML (it labels an error the way the answer would have been).

    >>> error_media_types()
    ('application/ld+json', 'text/csv', 'application/vnd.mapbox-vector-tile')
    """
    return tuple(
        dict.fromkeys(
            f.media_type
            for f in FORMATS
            if f.name not in ("json", "html") and f.routes != {DOWNLOAD}  # not pygeoapi's
        )
    )
