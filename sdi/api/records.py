"""The catalogue: an OGC API Records collection describing every published layer.

Each record is ISO 19115 shaped — title, abstract, keywords, extent, reference systems,
licence, contact — and carries its lineage: the last successful refresh run of the layer's ETL
jobs and the source files (with sha256) that run read. Records are built from ``layers/`` and
the warehouse at request time (extents cached for a few minutes), so lineage is always current.
Internal layers are never catalogued: the catalogue is public.
"""

from __future__ import annotations

import logging
import time
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from pygeoapi.provider.base import (
    BaseProvider,
    ProviderInvalidQueryError,
    ProviderItemNotFoundError,
)

from sdi import sql as sql_files
from sdi.api.db import pool
from sdi.layers import Layer, load_layers
from sdi.publish.config import DOWNLOAD_FORMATS, LANGUAGES, download_links, output_crs
from sdi.publish.config import texts as config_texts
from sdi.settings import get_settings

EXTENT_TTL = 300.0  # seconds an extent computed from the data is reused
LOGGER = logging.getLogger(__name__)
_extents: dict[str, tuple[float, list[float] | None]] = {}

FIELDS: dict[str, dict[str, Any]] = {
    "type": {"type": "string"},
    "title": {"type": "string"},
    "description": {"type": "string"},
    "keywords": {"type": "array", "items": {"type": "string"}},
    "domain": {"type": "string"},
    "updated": {"type": "string", "format": "date-time"},
    "license": {"type": "string"},
}


def _fold(text: str) -> str:
    """Lower case without diacritics, so 'ha long' finds 'Hạ Long'.

    >>> _fold("Đất ở tại đô thị")
    'dat o tai do thi'
    """
    text = text.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def _extent(layer: Layer) -> list[float] | None:
    if layer.table is None:  # no table, nothing to measure
        return None
    cached = _extents.get(layer.table)
    if cached and time.monotonic() - cached[0] < EXTENT_TTL:
        return cached[1]
    try:
        with pool().connection() as conn:
            box = conn.execute(
                sql.SQL(
                    "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
                    "FROM (SELECT ST_Extent({geom}) AS e FROM {table}) x"
                ).format(
                    geom=sql.Identifier(layer.geometry_field),
                    table=sql.Identifier(*layer.table.split(".")),
                )
            ).fetchone()
    except psycopg.errors.UndefinedTable:  # published before its migration ran: no extent yet
        LOGGER.warning("catalogue: the table %s does not exist (yet)", layer.table)
        box = None
    extent = [round(v, 6) for v in box] if box and box[0] is not None else None
    _extents[layer.table] = (time.monotonic(), extent)
    return extent


def _lineage(jobs: list[str], language: str = "vi") -> dict[str, Any] | None:
    if not jobs:
        return None
    with pool().connection() as conn:
        row = conn.execute(sql_files.query("sdi.api", "lineage"), {"jobs": jobs}).fetchone()
        if not row:
            return None
        sources = conn.execute(
            "SELECT path, sha256, size_bytes FROM etl.run_sources WHERE run_id = %s ORDER BY path",
            (row[0],),
        ).fetchall()
    run_id, job, started, finished, read, added, updated, retired, rejected = row
    statement = {
        "en": f"Loaded by ETL job {job} (run {run_id}) from the department's delivery: "
        f"{read} rows read, {added} added, {updated} updated, {retired} retired, "
        f"{rejected} rejected.",
        "vi": f"Nạp bởi tác vụ ETL {job} (lượt {run_id}) từ dữ liệu do sở, ngành gửi: "
        f"đọc {read} dòng, thêm {added}, cập nhật {updated}, loại bỏ {retired}, "
        f"từ chối {rejected}.",
    }
    return {
        "statement": statement.get(language, statement["vi"]),
        "counts": {
            "read": read,
            "added": added,
            "updated": updated,
            "retired": retired,
            "rejected": rejected,
        },
        "run_id": run_id,
        "job": job,
        "started": started.isoformat(),
        "finished": finished.isoformat(),
        "sources": [
            {"file": Path(path).name, "sha256": sha256, "size_bytes": size}
            for path, sha256, size in sources
        ],
    }


def build_record(layer: Layer, base_url: str, language: str = "vi") -> dict[str, Any]:
    """The catalogue record of one layer (OGC API Records core, GeoJSON encoding).

    Title, description, keywords and lineage statement in ``language`` (``vi``, the default,
    or ``en``); the other language's title and keywords are kept for the search (``q``).
    """
    settings = get_settings()
    extent = _extent(layer) or list(settings.province_extent)
    lineage = _lineage(list(layer.metadata.get("etl_jobs", [])), language)
    texts = {lang: {k: v[lang] for k, v in config_texts(layer).items()} for lang in LANGUAGES}
    language = language if language in texts else LANGUAGES[0]
    other = next(lang for lang in LANGUAGES if lang != language)
    updated = lineage["finished"] if lineage else None
    west, south, east, north = extent
    collection_url = f"{base_url}/collections/{layer.id}"
    return {
        "id": layer.id,
        "type": "Feature",
        "conformsTo": ["http://www.opengis.net/spec/ogcapi-records-1/1.0/req/record-core"],
        "time": {"interval": [lineage["started"], updated]} if lineage else None,
        "geometry": {
            "type": "Polygon",
            "coordinates": [
                [[west, south], [east, south], [east, north], [west, north], [west, south]]
            ],
        },
        "properties": {
            "type": "dataset",
            **texts[language],
            # the other language, for the search and for a client that shows both
            "alternate": {"language": other, **texts[other]},
            "domain": layer.domain,
            "department": layer.metadata.get("department"),
            "themes": [{"concepts": [{"id": layer.domain}], "scheme": "sdi-domain"}]
            if layer.domain
            else [],
            "language": {"code": language},
            "languages": [{"code": lang} for lang in LANGUAGES],
            "updated": updated,
            "license": layer.metadata.get("licence"),
            "rights": "Personal data is not published.",
            "contacts": [
                {
                    "organization": layer.metadata.get("department", settings.organisation),
                    "name": layer.metadata.get("contact"),
                    "emails": [{"value": settings.contact_email}],
                    "roles": ["pointOfContact"],
                }
            ],
            "crs": output_crs(settings),
            "extent": {"spatial": {"bbox": [extent], "crs": output_crs(settings)[0]}},
            "formats": [
                {"name": "GeoJSON", "mediaType": "application/geo+json"},
                *(
                    {"name": name, "mediaType": media}
                    for name, (media, _) in DOWNLOAD_FORMATS.items()
                ),
            ],
            "lineage": lineage,
        },
        "links": [
            {
                "rel": "item",
                "type": "application/json",
                "title": texts[language]["title"],
                "href": collection_url,
            },
            {
                "rel": "items",
                "type": "application/geo+json",
                "title": "Features",
                "href": f"{collection_url}/items",
            },
            # the downloads (sdi.api.downloads); no length: unknown until written
            *(
                {
                    "rel": "enclosure",
                    "type": link["type"],
                    "title": link["title"]["en"],
                    "href": link["href"],
                }
                for link in download_links(layer.id, base_url)
            ),
        ],
    }


class CatalogueProvider(BaseProvider):
    """pygeoapi record provider over the published layers."""

    def __init__(self, provider_def: dict[str, Any]) -> None:
        super().__init__(provider_def)
        self._fields = dict(FIELDS)

    def get_fields(self) -> dict[str, dict[str, Any]]:
        return dict(FIELDS)

    def _layers(self) -> list[Layer]:
        return [
            layer
            for layer in load_layers()
            if layer.kind == "features" and layer.access == "public"
        ]

    def _records(self, language: str = "vi") -> list[dict[str, Any]]:
        base = get_settings().server_url
        return [build_record(layer, base, language) for layer in self._layers()]

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
        **kwargs: Any,
    ) -> dict[str, Any]:
        if filterq is not None:
            raise ProviderInvalidQueryError(user_msg="use q, bbox and datetime to search")
        records = self._records(_language(kwargs.get("language")))
        if q:
            words = [_fold(w) for w in q.replace(",", " ").split()]
            records = [r for r in records if all(w in _fold(_text(r)) for w in words)]
        if bbox:
            records = [r for r in records if _intersects(r, bbox)]
        if datetime_:
            records = [r for r in records if _in_interval(r, datetime_)]
        for name, value in properties or []:
            if name not in FIELDS:
                raise ProviderInvalidQueryError(user_msg=f"unknown property {name}")
            records = [r for r in records if str(r["properties"].get(name)) == value]
        for key in reversed(sortby or []):
            if key["property"] not in FIELDS:
                raise ProviderInvalidQueryError(user_msg=f"cannot sort by {key['property']}")
            prop = key["property"]
            records.sort(
                key=lambda r: str(r["properties"].get(prop) or ""),
                reverse=key.get("order") == "-",
            )
        matched = len(records)
        page = [] if resulttype == "hits" else records[offset : offset + limit]
        for record in page:
            if skip_geometry:
                record["geometry"] = None
            if select_properties:
                record["properties"] = {
                    k: v for k, v in record["properties"].items() if k in select_properties
                }
        return {
            "type": "FeatureCollection",
            "features": page,
            "numberMatched": matched,
            "numberReturned": len(page),
        }

    def get(self, identifier: str, **kwargs: Any) -> dict[str, Any]:
        for layer in self._layers():
            if layer.id == identifier:
                return build_record(
                    layer, get_settings().server_url, _language(kwargs.get("language"))
                )
        raise ProviderItemNotFoundError(user_msg=f"no record {identifier!r}")


def _language(locale: Any) -> str:
    """The language pygeoapi chose for the provider (a babel Locale, from ``languages``)."""
    code = getattr(locale, "language", None) or (str(locale) if locale else "")
    return code[:2] if code[:2] in LANGUAGES else LANGUAGES[0]


def _text(record: dict[str, Any]) -> str:
    p = record["properties"]
    alternate = p.get("alternate") or {}
    return " ".join(
        [
            record["id"],
            p["title"],
            p["description"],
            *p["keywords"],
            alternate.get("title", ""),
            *alternate.get("keywords", []),
            p.get("domain") or "",
        ]
    )


def _intersects(record: dict[str, Any], bbox: list[float]) -> bool:
    ((west, south, east, north),) = record["properties"]["extent"]["spatial"]["bbox"]
    return not (east < bbox[0] or west > bbox[2] or north < bbox[1] or south > bbox[3])


def _parse_instant(text: str) -> datetime | None:
    if text in ("", ".."):
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ProviderInvalidQueryError(user_msg=f"datetime {text!r} is not RFC 3339") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _in_interval(record: dict[str, Any], datetime_: str) -> bool:
    updated = record["properties"].get("updated")
    if not updated:
        return False
    when = datetime.fromisoformat(updated)
    start_text, _, end_text = datetime_.partition("/")
    start = _parse_instant(start_text)
    end = _parse_instant(end_text) if "/" in datetime_ else start
    return (start is None or when >= start) and (end is None or when <= end)
