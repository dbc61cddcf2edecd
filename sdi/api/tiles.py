"""OGC API Tiles: Mapbox vector tiles built by PostGIS, on our psycopg 3 pool.

One SQL statement per tile, WebMercatorQuad over the province's extent, the published
properties only: ``docs/internals.md`` ("Vector tiles").
"""

from __future__ import annotations

import logging
import math
import re
from functools import cached_property
from http import HTTPStatus
from typing import Any, NamedTuple

import psycopg
from psycopg import sql
from pygeoapi.models.provider.base import TileMatrixSetEnum
from pygeoapi.provider.base import (
    ProviderConnectionError,
    ProviderGenericError,
    ProviderInvalidQueryError,
    ProviderQueryError,
)
from pygeoapi.provider.base_mvt import BaseMVTProvider
from pygeoapi.provider.tile import ProviderTilesetIdNotFoundError
from pygeoapi.util import url_join

from sdi import sql as sql_files
from sdi.api import pgtypes
from sdi.api.bbox import CRS84
from sdi.api.db import columns, read_connection

LOGGER = logging.getLogger(__name__)

TILING_SCHEME_REL = "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"
WEB_MERCATOR_QUAD = TileMatrixSetEnum.WEBMERCATORQUAD.value
EXTENT = 4096  # MVT grid of a tile
BUFFER = 256  # grid units drawn around a tile, so symbols and strokes are not cut at its edge
_INDEX = re.compile(r"[0-9]+")  # ASCII digits only (str.isdigit accepts "²")
_MAX_DIGITS = 12  # more is beyond any tile matrix (2^30 tiles a side at zoom 30): a 404


class _TileSetRequest(NamedTuple):
    """What pygeoapi passes to describe a tileset (in its order)."""

    dataset: str
    server_url: str
    layer: str | None
    tileset: str  # checked: the one tile matrix set offered
    title: str | None
    description: str | None
    keywords: list[str] | None


class TileOutOfRangeError(ProviderGenericError):
    """A tile this tileset does not have: 404 with an OGC exception body.

    (pygeoapi's own ProviderTileNotFoundError answers a bare text 404.)
    """

    ogc_exception_code = "NotFound"
    http_status_code = HTTPStatus.NOT_FOUND
    default_msg = "tile not found"


class InvalidTileIndexError(ProviderGenericError):
    ogc_exception_code = "InvalidParameterValue"
    http_status_code = HTTPStatus.BAD_REQUEST
    default_msg = "tile indices must be non-negative integers"


def tile_range(bounds: list[float] | tuple[float, ...], z: int) -> tuple[int, int, int, int]:
    """Columns and rows ``(min_col, max_col, min_row, max_row)`` of the WebMercatorQuad tiles
    at zoom ``z`` that cover a lon/lat box.

    >>> tile_range((106.4, 20.6, 108.2, 21.7), 8)
    (203, 204, 112, 113)
    >>> tile_range((-180, -85.06, 180, 85.06), 2)
    (0, 3, 0, 3)
    """
    west, south, east, north = bounds
    n = 2**z

    def col(lon: float) -> int:
        return min(n - 1, max(0, math.floor((lon + 180.0) / 360.0 * n)))

    def row(lat: float) -> int:
        lat = max(-85.0511287798, min(85.0511287798, lat))
        y = math.log(math.tan(math.radians(lat)) + 1 / math.cos(math.radians(lat)))
        return min(n - 1, max(0, math.floor((1 - y / math.pi) / 2 * n)))

    return col(west), col(east), row(north), row(south)


class PostGISTileProvider(BaseMVTProvider):
    """Vector tiles (MVT) of a PostGIS table or view, in WebMercatorQuad."""

    def __init__(self, provider_def: dict[str, Any]) -> None:
        # pygeoapi builds a provider for every request: nothing here touches the database.
        super().__init__(provider_def)
        data = self.data
        schema, _, table = data["table"].partition(".")
        self.table_name = data["table"]
        self.table = sql.Identifier(schema, table)
        self.layer = data.get("layer") or table
        self.storage_srid = int(data.get("storage_srid", 4326))
        self.bounds = [float(v) for v in data.get("bounds", (-180, -85.06, 180, 85.06))]
        self.id_field = provider_def.get("id_field", "id")
        self.geom_field = provider_def.get("geom_field", "geom")
        self.properties = list(provider_def.get("properties", []))
        zoom = self.options.get("zoom", {})
        self.min_zoom = int(zoom.get("min", 0))
        self.max_zoom = int(zoom.get("max", len(WEB_MERCATOR_QUAD.tileMatrices) - 1))

    def __repr__(self) -> str:
        return f"<PostGISTileProvider> {self.table_name}"

    # -- description -------------------------------------------------------------------
    def get_layer(self) -> str:
        return self.layer

    def column_types(self) -> dict[str, str]:
        """PostgreSQL types of the published columns (the feature provider's cached look-up)."""
        return columns(self.table_name, tuple(self.properties))

    def get_fields(self) -> dict[str, dict[str, Any]]:
        """JSON Schema of the properties as a tile carries them."""
        return {
            name: pgtypes.mvt_json_schema(pg_type) for name, pg_type in self.column_types().items()
        }

    def get_tiling_schemes(self) -> list:
        return [WEB_MERCATOR_QUAD]

    def get_tiles_service(
        self,
        baseurl: str | None = None,
        servicepath: str | None = None,
        dirpath: str | None = None,
        tile_type: str | None = None,
    ) -> dict[str, Any]:
        super().get_tiles_service(baseurl, servicepath, dirpath, tile_type)
        self._service_url = servicepath
        return self.get_tms_links()

    def limits(self) -> list[dict[str, Any]]:
        """tileMatrixSetLimits: the tiles served at each zoom level."""
        limits = []
        for z in range(self.min_zoom, self.max_zoom + 1):
            min_col, max_col, min_row, max_row = tile_range(self.bounds, z)
            limits.append(
                {
                    "tileMatrix": str(z),
                    "minTileRow": min_row,
                    "maxTileRow": max_row,
                    "minTileCol": min_col,
                    "maxTileCol": max_col,
                }
            )
        return limits

    # -- one tile ----------------------------------------------------------------------
    def _check_tileset(self, tileset: str | None) -> None:
        if tileset != WEB_MERCATOR_QUAD.tileMatrixSet:
            raise ProviderTilesetIdNotFoundError(
                user_msg=f"tile matrix set {tileset!r} is not offered; "
                f"this collection has {WEB_MERCATOR_QUAD.tileMatrixSet}"
            )

    def tile_index(self, z: Any, y: Any, x: Any) -> tuple[int, int, int]:
        """The checked integer ``(z, y, x)`` of a tile this tileset has."""
        if not all(_INDEX.fullmatch(str(v)) for v in (z, y, x)):
            raise InvalidTileIndexError(
                user_msg=f"tileMatrix, tileRow and tileCol must be non-negative integers, "
                f"not {z}/{y}/{x}"
            )
        if any(len(str(v).lstrip("0")) > _MAX_DIGITS for v in (z, y, x)):
            raise TileOutOfRangeError(user_msg=f"no tile {z}/{y}/{x} in this tile matrix set")
        z, y, x = int(z), int(y), int(x)
        if not self.min_zoom <= z <= self.max_zoom:
            raise TileOutOfRangeError(
                user_msg=f"tile matrix {z} is not served for this collection: "
                f"tile matrices {self.min_zoom} to {self.max_zoom} are"
            )
        min_col, max_col, min_row, max_row = tile_range(self.bounds, z)
        if not (min_row <= y <= max_row and min_col <= x <= max_col):
            raise TileOutOfRangeError(
                user_msg=f"tile {z}/{y}/{x} is outside this collection's tile matrix limits "
                f"(rows {min_row}-{max_row}, columns {min_col}-{max_col} at tile matrix {z})"
            )
        return z, y, x

    @cached_property
    def _statement(self) -> sql.Composed:
        values = [
            sql.SQL("{} AS {}").format(
                pgtypes.mvt_value(sql.Identifier("t", name), pg_type), sql.Identifier(name)
            )
            for name, pg_type in self.column_types().items()
        ]
        selected = [sql.Identifier("t", name) for name in (self.id_field, self.geom_field)]
        selected += [sql.Identifier("t", name) for name in self.column_types()]
        return sql_files.query("sdi.api", "tile").format(
            extent=sql.Literal(EXTENT),
            buffer=sql.Literal(BUFFER),
            id=sql.Identifier("t", self.id_field),
            geom=sql.Identifier("t", self.geom_field),
            comma=sql.SQL(", " if values else ""),
            values=sql.SQL(", ").join(values),
            columns=sql.SQL(", ").join(selected),
            table=self.table,
            srid=sql.Literal(self.storage_srid),
        )

    def get_tiles(
        self,
        layer: str | None = None,
        tileset: str | None = None,
        z: Any = None,
        y: Any = None,
        x: Any = None,
        format_: str | None = None,
    ) -> bytes | None:
        """The MVT of tile z/y/x, or None (204) when no feature is in it."""
        self._check_tileset(tileset)
        z, y, x = self.tile_index(z, y, x)
        params = {"z": z, "x": x, "y": y, "layer": self.layer, "margin": BUFFER / EXTENT}
        try:
            with read_connection() as conn:
                tile = sql_files.one(conn.execute(self._statement, params))[0]
        except psycopg.errors.QueryCanceled as exc:
            raise ProviderQueryError(user_msg="the tile took too long to build") from exc
        except psycopg.OperationalError as exc:
            LOGGER.error("database unavailable: %s", exc)
            raise ProviderConnectionError(user_msg="the warehouse is not reachable") from exc
        return bytes(tile) or None

    # -- tileset metadata --------------------------------------------------------------
    def get_metadata(
        self,
        dataset: str,
        server_url: str,
        layer: str | None = None,
        tileset: str | None = None,
        metadata_format: str | None = None,
        title: str | None = None,
        description: str | None = None,
        keywords: list[str] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        self._check_tileset(tileset)
        # no f and no Accept pygeoapi knows: the JSON tileset metadata (not an AttributeError)
        metadata_format = (metadata_format or "json").upper()
        if metadata_format not in ("JSON", "JSONLD", "TILEJSON", "HTML"):
            raise ProviderInvalidQueryError(
                user_msg=f"unsupported format {metadata_format.lower()!r}: "
                "json, jsonld, tilejson or html"
            )
        tileset = WEB_MERCATOR_QUAD.tileMatrixSet  # the one _check_tileset let through
        request = _TileSetRequest(dataset, server_url, layer, tileset, title, description, keywords)
        if metadata_format == "TILEJSON":
            return self.tilejson(request)
        if metadata_format == "HTML":
            return self.html_metadata(request)
        return self.tileset_metadata(request)  # JSON and JSON-LD

    def _tile_url(self, server_url: str, dataset: str, tileset: str) -> str:
        return url_join(
            server_url,
            f"collections/{dataset}/tiles/{tileset}",
            "{tileMatrix}/{tileRow}/{tileCol}?f=" + self.format_type,
        )

    def _properties_schema(self) -> dict[str, Any]:
        return {"type": "object", "properties": self.get_fields()}

    def tileset_metadata(self, request: _TileSetRequest) -> dict[str, Any]:
        """OGC Tile Set Metadata (2D TMS 2.0), with the limits and the properties schema."""
        dataset, server_url, layer, tileset, title, description, keywords = request
        west, south, east, north = self.bounds
        return {
            "title": title,
            "description": description,
            **({"keywords": keywords} if keywords else {}),
            "dataType": "vector",
            "crs": WEB_MERCATOR_QUAD.crs,
            "tileMatrixSetURI": WEB_MERCATOR_QUAD.tileMatrixSetURI,
            "tileMatrixSetLimits": self.limits(),
            "mediaTypes": [self.mimetype],
            "boundingBox": {"lowerLeft": [west, south], "upperRight": [east, north], "crs": CRS84},
            "layers": [
                {
                    "id": layer,
                    "title": title,
                    "dataType": "vector",
                    "minTileMatrix": str(self.min_zoom),
                    "maxTileMatrix": str(self.max_zoom),
                    "propertiesSchema": self._properties_schema(),
                }
            ],
            "links": [
                {
                    "href": url_join(server_url, "TileMatrixSets", tileset),
                    "rel": TILING_SCHEME_REL,
                    "type": "application/json",
                    "title": f"{tileset} tile matrix set definition",
                },
                {
                    "href": self._tile_url(server_url, dataset, tileset),
                    "rel": "item",
                    "type": self.mimetype,
                    "title": f"{tileset} vector tiles for {layer}",
                    "templated": True,
                },
                {
                    "href": url_join(server_url, f"collections/{dataset}/tiles/{tileset}")
                    + "?f=tilejson",
                    "rel": "alternate",
                    "type": "application/json",
                    "title": "This tileset in TileJSON",
                },
            ],
        }

    def tilejson(self, request: _TileSetRequest) -> dict[str, Any]:
        """TileJSON 3.0 (what MapLibre and QGIS read), with the layer's fields."""
        dataset, server_url, layer, tileset, title, description, _ = request
        west, south, east, north = self.bounds
        kinds = {"integer": "Number", "number": "Number", "boolean": "Boolean"}
        url = url_join(server_url, f"collections/{dataset}/tiles/{tileset}", "{z}/{y}/{x}")
        return {
            "tilejson": "3.0.0",
            "name": title,
            "description": description,
            "tiles": [f"{url}?f={self.format_type}"],
            "minzoom": self.min_zoom,
            "maxzoom": self.max_zoom,
            "bounds": [west, south, east, north],
            "center": [(west + east) / 2, (south + north) / 2, self.min_zoom],
            "vector_layers": [
                {
                    "id": layer,
                    "description": title,
                    "minzoom": self.min_zoom,
                    "maxzoom": self.max_zoom,
                    "fields": {
                        name: kinds.get(schema.get("type", ""), "String")
                        for name, schema in self.get_fields().items()
                    },
                }
            ],
        }

    def html_metadata(self, request: _TileSetRequest) -> dict[str, Any]:
        """What pygeoapi's HTML tileset template shows."""
        dataset, server_url, _, tileset, title, _, _ = request
        metadata_url = url_join(server_url, f"collections/{dataset}/tiles/{tileset}")
        return {
            "id": dataset,
            "title": title,
            "tileset": tileset,
            "collections_path": self._tile_url(server_url, dataset, tileset),
            "json_url": f"{metadata_url}?f=json",
            "tilejson_url": f"{metadata_url}?f=tilejson",
        }
