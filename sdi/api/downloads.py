"""Downloads: a collection, or the result of a query, as a GeoPackage, a Shapefile, CSV or GeoJSON.

See ``docs/downloads.md``.

``GET /collections/{id}/download?f=gpkg|shp|csv|geojson`` with the items' filters — ``bbox``
(CRS84), ``filter`` (CQL2 text, ``filter-lang=cql2-text``), ``datetime`` and
``<property>=<value>`` — and ``crs`` (one of the collection's CRSs, e.g. VN-2000 / TM-3
``http://www.opengis.net/def/crs/EPSG/0/5899``) answers the matching features as a file
(``Content-Disposition: attachment; filename="<collection>-<date>.<ext>"``):

- **the same SQL as the items**: the WHERE clause is the feature provider's
  (:meth:`sdi.api.provider.PostGISProvider.where`: bbox on the indexed geometry, CQL2 through
  :mod:`sdi.api.cql`, datetime, property equality), so a download holds exactly the features
  ``/items`` would page through;
- **published properties only, never personal ones**: the layer's published properties less
  its ``personal`` fields, even on a layer that shows them to its readers page by page
  (``publish_personal``): a bulk copy leaves the access control for good;
- **same access rules**: the route sits inside :class:`sdi.api.auth.AccessControl`; a
  collection hidden from the caller arrives here under an id no layer has and gets the same
  404 "Collection not found" as a collection that does not exist;
- **streamed**: GeoJSON and CSV go from a server-side cursor to the client batch by batch
  (:data:`Settings.download_batch_rows` rows at a time); GeoPackage and Shapefile are files
  by nature: Arrow batches from the same cursor are written by GDAL (``pyogrio.write_arrow``)
  into a private temporary directory (0700), the file (the Shapefile's parts zipped, with
  ``.cpg`` = UTF-8 and ``.prj``) is streamed and deleted. Memory stays bounded by one batch;
- **size limits**: the matching features are counted first (up to the limit): above
  :data:`Settings.download_anonymous_max_features` an anonymous request is refused with a 413
  (never trimmed: a silently incomplete file looks complete) asking to narrow the query or to
  use an API key; above :data:`Settings.download_key_max_features` a key holder's request is
  refused the same way, pointing to the asynchronous ``export`` process
  (:mod:`sdi.api.export_process`), which runs :func:`export`.

CSV cells that a spreadsheet would run as formulas are neutralised (:mod:`sdi.api.csv_safe`).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import shutil
import tempfile
import unicodedata
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import psycopg
from psycopg import sql
from pygeoapi.provider.base import ProviderGenericError
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from sdi.api import csv_safe, geojson
from sdi.api.asgi import NOT_FOUND, layer_of_get, send_error
from sdi.api.db import columns as column_types
from sdi.api.db import provider_error
from sdi.api.openapi import table_collections
from sdi.api.provider import PostGISProvider, output_crs
from sdi.layers import Layer
from sdi.publish.config import CRS84, DOWNLOAD_FORMATS, feature_provider
from sdi.publish.config import output_crs as collection_crs
from sdi.settings import Settings, get_settings
from sdi.sql import one

LOGGER = logging.getLogger("sdi.api.downloads")

PATH = re.compile(r"^/collections/([^/]+)/download/?$")
GEOMETRY = "geometry"  # the geometry column of the files
WKT = "WKT"  # the geometry column of the CSV (GDAL and QGIS recognise it by this name)
CHUNK = 1 << 20  # bytes read at a time from a file being streamed


@dataclass(frozen=True)
class DownloadFormat:
    """One download format: ``f=`` name, file extension, media type and how it is written."""

    name: str
    extension: str
    driver: str | None = None  # GDAL driver of a file format; None: streamed as text

    @property
    def media_type(self) -> str:  # one table of media types and link titles: the config's
        return DOWNLOAD_FORMATS[self.name][0]


FORMATS: dict[str, DownloadFormat] = {
    fmt.name: fmt
    for fmt in (
        DownloadFormat("gpkg", "gpkg", "GPKG"),
        DownloadFormat("shp", "zip", "ESRI Shapefile"),
        DownloadFormat("csv", "csv"),
        DownloadFormat("geojson", "geojson"),
    )
}
DEFAULT_FORMAT = "gpkg"
# Query parameters of the route (others are property filters, as on /items).
PARAMETERS = ("f", "bbox", "filter", "filter-lang", "datetime", "crs", "lang")


class DownloadError(ValueError):
    """A download that cannot be answered; ``status`` and the message go to the client."""

    def __init__(self, message: str, status: int = 400, code: str = "InvalidParameterValue"):
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class Query:
    """What to export: the items' filters and the output CRS (None: the default)."""

    bbox: tuple[float, ...] = ()
    filter: str | None = None
    datetime: str | None = None
    properties: tuple[tuple[str, str], ...] = ()
    crs: str | None = None

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Query:
        """From query parameters (or a process's inputs): strings, or a bbox as numbers."""
        bbox = params.get("bbox") or ()
        if isinstance(bbox, str):
            try:
                bbox = tuple(float(v) for v in bbox.split(","))
            except ValueError:
                raise DownloadError("bbox: four numbers, minx,miny,maxx,maxy (CRS84)") from None
        bbox = tuple(float(v) for v in bbox)
        if bbox and len(bbox) not in (4, 6):
            raise DownloadError("bbox: four numbers, minx,miny,maxx,maxy (CRS84)")
        language = params.get("filter-lang") or params.get("filter_lang")
        if language not in (None, "cql2-text"):
            raise DownloadError("filter-lang: downloads take CQL2 text filters (cql2-text)")
        properties = params.get("properties") or {}
        return cls(
            bbox=bbox,
            filter=params.get("filter") or None,
            datetime=params.get("datetime") or None,
            properties=tuple(sorted(dict(properties).items())),
            crs=params.get("crs") or None,
        )


@dataclass
class Plan:
    """The SQL of a download: the table, the WHERE clause of the query and the columns."""

    layer: Layer
    table: sql.Composable
    where: sql.Composable
    params: dict[str, Any]
    columns: dict[str, str]  # published, non-personal property → PostgreSQL type
    srid: int  # of the output coordinates
    north_first: bool  # for GeoJSON in a CRS whose first axis is northing
    decimals: int
    crs_uri: str
    settings: Settings = field(default_factory=get_settings)

    def geometry(self) -> sql.Composable:
        column = sql.Identifier("t", self.layer.geometry_field)
        if self.srid == self.settings.storage_srid:
            return column
        return sql.SQL("ST_Transform({}, {})").format(column, sql.Literal(self.srid))

    def count(self, conn: psycopg.Connection, cap: int) -> int:
        """The number of matching features, counted up to ``cap`` (then ``cap``)."""
        statement = sql.SQL(
            "SELECT count(*) FROM (SELECT 1 FROM {} t WHERE {} LIMIT %(cap)s) x"
        ).format(self.table, self.where)
        return int(one(conn.execute(statement, {**self.params, "cap": cap}))[0])

    def select(self, fmt: DownloadFormat) -> sql.Composed:
        """The rows of a download in this format, in id order."""
        if fmt.name == "geojson":
            geometry = geojson.geometry(
                sql.Identifier("t", self.layer.geometry_field),
                None if self.crs_uri == CRS84 else self.srid,
                north_first=self.north_first,
                decimals=self.decimals,
            )
            feature = geojson.feature(
                sql.Identifier("t", self.layer.id_field),
                geometry,
                geojson.columns("t", self.columns),
            )
            values: list[sql.Composable] = [sql.SQL("{}::text").format(feature)]
        else:
            values = [sql.Identifier("t", self.layer.id_field)]
            values += [self._column(name, pg_type, fmt) for name, pg_type in self.columns.items()]
            if fmt.name == "csv":
                values.append(
                    sql.SQL("ST_AsText({}, {})").format(self.geometry(), sql.Literal(self.decimals))
                )
            else:
                values.append(sql.SQL("ST_AsBinary({})").format(self.geometry()))
        return sql.SQL("SELECT {} FROM {} t WHERE {} ORDER BY {}").format(
            sql.SQL(", ").join(values),
            self.table,
            self.where,
            sql.Identifier("t", self.layer.id_field),
        )

    @staticmethod
    def _column(name: str, pg_type: str, fmt: DownloadFormat) -> sql.Composable:
        """A property as the file can hold it: numbers as numbers, dates as dates, arrays and
        documents as their text; timestamps in UTC (as text in a Shapefile, which has none)."""
        column = sql.Identifier("t", name)
        kind = _arrow_kind(pg_type)
        if kind == "float":
            return sql.SQL("{}::double precision").format(column)
        if kind == "timestamp" and fmt.name == "shp":
            return sql.SQL(_UTC_TEXT).format(column)
        if kind == "text" and pg_type not in ("text", "character varying"):
            return sql.SQL("{}::text").format(column)
        return column


_UTC_TEXT = """to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')"""


def _arrow_kind(pg_type: str) -> str:
    """What a column becomes in a file: int32, int64, float, boolean, date, timestamp, text."""
    if pg_type.endswith("[]"):
        return "text"
    if pg_type in ("smallint", "integer"):
        return "int32"
    if pg_type == "bigint":
        return "int64"
    if pg_type in ("real", "double precision") or pg_type.startswith("numeric"):
        return "float"
    if pg_type == "boolean":
        return "boolean"
    if pg_type == "date":
        return "date"
    if pg_type.startswith("timestamp"):
        return "timestamp"
    return "text"


def exported_properties(layer: Layer) -> list[str]:
    """The properties a download carries: the published ones, never a personal field."""
    return [p for p in layer.published_properties if p not in layer.personal]


def plan(layer: Layer, query: Query, settings: Settings | None = None) -> Plan:
    """The SQL of a download of ``layer`` for ``query``; a :class:`DownloadError` for a query
    the items would refuse too (the provider's own checks and messages)."""
    from pygeoapi.crs import modify_pygeofilter
    from pygeofilter.parsers.cql2_text import parse as parse_cql2_text

    settings = settings or get_settings()
    if layer.kind != "features" or not layer.table:
        raise DownloadError(NOT_FOUND, 404, "NotFound")
    definition = feature_provider(layer, settings)
    crs_uri = query.crs or CRS84
    if crs_uri not in collection_crs(settings):
        raise DownloadError("crs: one of " + ", ".join(collection_crs(settings)))
    filter_node = None
    if query.filter:
        try:
            filter_node = modify_pygeofilter(
                parse_cql2_text(query.filter),
                filter_crs_uri=CRS84,
                storage_crs_uri=definition.get("storage_crs"),
                geometry_column_name=definition.get("geom_field"),
            )
        except Exception:  # pygeofilter's parse errors have no common base class
            raise DownloadError(
                "filter: not CQL2 text (e.g. filter=commune_code='22246' AND floors>3)"
            ) from None
    try:
        provider = PostGISProvider(definition)
        unknown = [name for name, _ in query.properties if name not in provider.get_fields()]
        if unknown:
            raise DownloadError(
                f"unknown parameter(s) {', '.join(unknown)}; properties to filter on: "
                + ", ".join(provider.get_fields())
            )
        where, params = provider.where(
            list(query.bbox), list(query.properties), query.datetime, filter_node
        )
        kept = exported_properties(layer)
        types = column_types(layer.table, tuple(layer.published_properties))
    except ProviderGenericError as exc:
        raise DownloadError(exc.message, exc.http_status_code, exc.ogc_exception_code) from None
    srid, north_first, decimals = output_crs(crs_uri)
    schema, _, name = layer.table.partition(".")
    return Plan(
        layer=layer,
        table=sql.Identifier(schema, name),
        where=where,
        params=params,
        columns={p: types[p] for p in kept},
        srid=settings.storage_srid if srid is None else srid,  # no EPSG code: as stored
        north_first=north_first,
        decimals=decimals,
        crs_uri=crs_uri,
        settings=settings,
    )


# -- reading --------------------------------------------------------------------------------
def _connect(settings: Settings) -> psycopg.Connection:
    """A connection of its own (not the API pool's: a slow client holds it for the whole
    download), in UTC, read-only, as the API role (never personal columns)."""
    from sdi.api.db import api_url

    return psycopg.connect(
        api_url(),
        options="-c TimeZone=UTC -c default_transaction_read_only=on -c jit=off "
        "-c max_parallel_workers_per_gather=0 -c statement_timeout=120000",
        application_name="sdi-download",
    )


def _rows(plan_: Plan, fmt: DownloadFormat, conn: psycopg.Connection) -> Iterator[list[tuple]]:
    """Batches of rows from a server-side cursor (inside the connection's transaction)."""
    batch = plan_.settings.download_batch_rows
    with conn.cursor(name="sdi_download") as cursor:
        cursor.itersize = batch
        cursor.execute(plan_.select(fmt), plan_.params)
        while rows := cursor.fetchmany(batch):
            yield rows


def geojson_chunks(plan_: Plan, conn: psycopg.Connection) -> Iterator[bytes]:
    """A GeoJSON FeatureCollection, a batch of features at a time."""
    fmt = FORMATS["geojson"]
    head: dict[str, Any] = {"type": "FeatureCollection", "name": plan_.layer.id}
    if plan_.crs_uri != CRS84:  # RFC 7946 has no CRS member; GDAL reads this one
        head["crs"] = {
            "type": "name",
            "properties": {"name": f"urn:ogc:def:crs:EPSG::{plan_.srid}"},
        }
    yield (json.dumps(head, ensure_ascii=False)[:-1] + ', "features": [\n').encode()
    first = True
    for rows in _rows(plan_, fmt, conn):
        text = ",\n".join(row[0] for row in rows)
        yield ((",\n" if not first else "") + text).encode()
        first = False
    yield b"\n]}\n"


def csv_chunks(plan_: Plan, conn: psycopg.Connection) -> Iterator[bytes]:
    """CSV with a header, UTF-8 with a byte-order mark (so spreadsheets read Vietnamese),
    text cells neutralised (:mod:`sdi.api.csv_safe`), the geometry as WKT."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([plan_.layer.id_field, *plan_.columns, WKT])
    yield ("\ufeff" + buffer.getvalue()).encode()
    for rows in _rows(plan_, FORMATS["csv"], conn):
        buffer.seek(0)
        buffer.truncate()
        for row in rows:
            writer.writerow([csv_safe.cell(_csv_value(v)) for v in row[:-1]] + [row[-1]])
        yield buffer.getvalue().encode()


def _csv_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value


def shapefile_names(names: list[str]) -> dict[str, str]:
    """Property → DBF field name: at most 10 ASCII characters, unique regardless of case,
    chosen in the order of the properties (so the same layer always gets the same names).

    >>> shapefile_names(["official_area_km2", "official_area_m2", "name", "diện_tích"])
    {'official_area_km2': 'official_a', 'official_area_m2': 'official_1', 'name': 'name', \
'diện_tích': 'dien_tich'}
    """
    chosen: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        ascii_name = (
            unicodedata.normalize("NFKD", name.replace("đ", "d").replace("Đ", "D"))
            .encode("ascii", "ignore")
            .decode()
        )
        base = re.sub(r"[^A-Za-z0-9_]", "_", ascii_name) or "field"
        candidate, n = base[:10], 0
        while candidate.lower() in taken:
            n += 1
            suffix = str(n)
            candidate = base[: 10 - len(suffix)] + suffix
        taken.add(candidate.lower())
        chosen[name] = candidate
    return chosen


def _arrow_schema(plan_: Plan, fmt: DownloadFormat, names: dict[str, str]) -> Any:
    import pyarrow as pa

    types = {
        "int32": pa.int32(),
        "int64": pa.int64(),
        "float": pa.float64(),
        "boolean": pa.bool_(),
        "date": pa.date32(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "text": pa.string(),
    }
    fields = [pa.field(names[plan_.layer.id_field], pa.int64())]
    for name, pg_type in plan_.columns.items():
        kind = _arrow_kind(pg_type)
        if kind == "timestamp" and fmt.name == "shp":
            kind = "text"
        fields.append(pa.field(names[name], types[kind]))
    fields.append(pa.field(GEOMETRY, pa.binary()))
    return pa.schema(fields)


def write_file(plan_: Plan, fmt: DownloadFormat, directory: Path, conn: psycopg.Connection) -> Path:
    """Write the download into ``directory`` with GDAL, batch by batch; the file to send (a
    Shapefile's parts zipped, with a list of the shortened field names)."""
    import pyarrow as pa
    import pyogrio

    layer = plan_.layer
    columns = [layer.id_field, *plan_.columns]  # the feature id first, as in /items
    names = shapefile_names(columns) if fmt.name == "shp" else {name: name for name in columns}
    schema = _arrow_schema(plan_, fmt, names)

    def batches() -> Iterator[Any]:
        for rows in _rows(plan_, fmt, conn):
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array([row[i] for row in rows], type=schema.field(i).type)
                    for i in range(len(schema))
                ],
                schema=schema,
            )

    reader = pa.RecordBatchReader.from_batches(schema, batches())
    target = directory / f"{layer.id}.{'shp' if fmt.name == 'shp' else fmt.extension}"
    options: dict[str, Any] = {}
    if fmt.name == "shp":
        options["layer_options"] = {"ENCODING": "UTF-8"}  # writes the .cpg
    pyogrio.write_arrow(
        reader,
        str(target),
        layer=layer.id,
        driver=fmt.driver,
        geometry_name=GEOMETRY,
        geometry_type="Unknown",
        crs=f"EPSG:{plan_.srid}",
        **options,
    )
    if fmt.name != "shp":
        return target
    mapping = directory / f"{layer.id}-fields.csv"
    with mapping.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(["shapefile_field", "property"])
        writer.writerows((short, name) for name, short in names.items())
    archive = directory / f"{layer.id}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for part in sorted(directory.iterdir()):
            if part != archive and part.suffix.lower() in (".shp", ".shx", ".dbf", ".prj", ".cpg"):
                zipped.write(part, part.name)
        zipped.write(mapping, mapping.name)
    return archive


def _private_directory(settings: Settings) -> Path:
    """A temporary directory only this process's user can read (mkdtemp: 0700)."""
    parent = settings.state_dir / "server" / "downloads"
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="download-", dir=parent))


def export(
    collection: str,
    params: dict[str, Any],
    fmt: str,
    path: Path,
    settings: Settings | None = None,
    layers: list[Layer] | None = None,
    max_features: int | None = None,
) -> int:
    """Export a collection (or the result of a query: ``params`` as :meth:`Query.from_params`
    reads them) in format ``fmt`` to ``path``; the number of features written.

    No access check: the caller (the ``export`` process, an operator's script) decides who may
    export what, by the ``layers`` it passes. Above ``max_features`` (None: no limit), a 413
    :class:`DownloadError` and no file.
    """
    from sdi.layers import load_layers

    settings = settings or get_settings()
    layer = next((x for x in layers or load_layers(settings) if x.id == collection), None)
    if layer is None or fmt not in FORMATS:
        raise DownloadError(
            NOT_FOUND if layer is None else f"format: one of {', '.join(FORMATS)}",
            404 if layer is None else 400,
        )
    download = FORMATS[fmt]
    plan_ = plan(layer, Query.from_params(params), settings)
    with _connect(settings) as conn:
        count = plan_.count(conn, 2**62 if max_features is None else max_features + 1)
        if max_features is not None and count > max_features:
            raise DownloadError(f"more than {max_features} features match", 413, "PayloadTooLarge")
        if download.driver is None:
            chunks = geojson_chunks if fmt == "geojson" else csv_chunks
            with Path(path).open("wb") as out:
                for chunk in chunks(plan_, conn):
                    out.write(chunk)
            return count
        directory = _private_directory(settings)
        try:
            written = write_file(plan_, download, directory, conn)
            shutil.move(str(written), str(path))
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    return count


# -- the route ------------------------------------------------------------------------------
def filename(layer: Layer, fmt: DownloadFormat, today: datetime | None = None) -> str:
    """``<collection>-<date>.<ext>``.

    >>> from pathlib import Path
    >>> lamps = Layer("lamps", Path("x"), "Lamps", "", "utility.street_lamps_current", ("a",))
    >>> filename(lamps, FORMATS["shp"], datetime(2026, 12, 7, tzinfo=UTC))
    'lamps-2026-12-07.zip'
    """
    day = (today or datetime.now(UTC)).date().isoformat()
    return f"{layer.id}-{day}.{fmt.extension}"


def _parameters(query: str) -> tuple[DownloadFormat, dict[str, Any]]:
    params: dict[str, Any] = {}
    properties: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in params or key in properties:
            raise DownloadError(f"parameter {key} is given more than once")
        if key in PARAMETERS:
            params[key] = value
        else:
            properties[key] = value
    name = params.pop("f", DEFAULT_FORMAT) or DEFAULT_FORMAT
    if name not in FORMATS:
        raise DownloadError(f"f: one of {', '.join(FORMATS)}")
    params["properties"] = properties
    return FORMATS[name], params


class Downloads:
    """ASGI middleware: ``/collections/{id}/download`` is answered here, the rest goes on."""

    def __init__(self, app: ASGIApp, layers: list[Layer], settings: Settings | None = None) -> None:
        self.app = app
        self.layers = {layer.id: layer for layer in layers if layer.kind == "features"}
        self.settings = settings or get_settings()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = PATH.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        layer = await layer_of_get(
            scope, send, self.layers, match.group(1), "downloads answer GET only"
        )
        if layer is None:
            return
        head = scope["method"] == "HEAD"
        from sdi.api.auth import ANONYMOUS, SCOPE_IDENTITY

        anonymous = scope.get(SCOPE_IDENTITY, ANONYMOUS).anonymous
        query = scope.get("query_string", b"").decode("latin-1")
        try:
            fmt, params = _parameters(query)
            prepared = await run_in_threadpool(self._prepare, layer, fmt, params, anonymous, head)
        except DownloadError as exc:
            await send_error(send, exc.status, exc.code, str(exc), head=head)
            return
        body, length, count = prepared
        headers = {
            "Content-Disposition": f'attachment; filename="{filename(layer, fmt)}"',
            "X-Number-Matched": str(count),
            "Cache-Control": "no-store",
        }
        if length is not None:
            headers["Content-Length"] = str(length)
        response = StreamingResponse(body, media_type=_media_type(fmt), headers=headers)
        await response(scope, receive, send)

    def _prepare(
        self,
        layer: Layer,
        fmt: DownloadFormat,
        params: dict[str, Any],
        anonymous: bool,
        head: bool = False,
    ) -> tuple[Iterator[bytes], int | None, int]:
        """Check the query, count, and open the stream: (chunks, length if known, count).
        HEAD: checked and counted only (the answer a GET would get, without the file)."""
        plan_ = plan(layer, Query.from_params(params), self.settings)
        try:
            conn = _connect(self.settings)
        except psycopg.OperationalError as exc:
            LOGGER.error("database unavailable: %s", exc)
            raise DownloadError(
                "the warehouse is not reachable", 503, "ServiceUnavailable"
            ) from None
        try:
            limit = (
                self.settings.download_anonymous_max_features
                if anonymous
                else self.settings.download_key_max_features
            )
            count = plan_.count(conn, limit + 1)
            if count > limit:
                raise DownloadError(_too_large(layer, limit, anonymous), 413, "PayloadTooLarge")
            if head:
                conn.close()
                return iter(()), None, count
            if fmt.driver is None:
                chunks = geojson_chunks if fmt.name == "geojson" else csv_chunks
                return _closing(chunks(plan_, conn), conn), None, count
            directory = _private_directory(self.settings)
            try:
                written = write_file(plan_, fmt, directory, conn)
            except BaseException:
                shutil.rmtree(directory, ignore_errors=True)
                raise
            conn.close()
            return _file_chunks(written, directory), written.stat().st_size, count
        except psycopg.errors.QueryCanceled:
            conn.close()
            raise DownloadError("the download took too long; narrow it", 503, "Timeout") from None
        except psycopg.Error as exc:  # as the items answer it: a 400 for what the query got wrong
            conn.close()
            error = provider_error(exc)
            assert isinstance(error, ProviderGenericError)
            raise DownloadError(
                error.message, error.http_status_code, error.ogc_exception_code
            ) from None
        except BaseException:
            conn.close()
            raise


def _too_large(layer: Layer, limit: int, anonymous: bool) -> str:
    if anonymous:
        return (
            f"more than {limit} features match: narrow the download (bbox, filter, datetime) "
            "or send an API key (X-API-Key header) for larger downloads"
        )
    return (
        f"more than {limit} features match: narrow the download, or have it run as an "
        "asynchronous job of the export process (POST /processes/export/execution with "
        f'{{"inputs": {{"collection": "{layer.id}", "format": …}}}} and the header '
        "Prefer: respond-async; docs/downloads.md)"
    )


def _media_type(fmt: DownloadFormat) -> str:
    return fmt.media_type + ("; charset=utf-8" if fmt.name in ("csv", "geojson") else "")


def _closing(chunks: Iterator[bytes], conn: psycopg.Connection) -> Iterator[bytes]:
    """The chunks, then the connection closed (also when the client goes away early)."""
    try:
        yield from chunks
    finally:
        conn.close()


def _file_chunks(path: Path, directory: Path) -> Iterator[bytes]:
    """A file's bytes, then its private directory removed."""
    try:
        with path.open("rb") as source:
            while chunk := source.read(CHUNK):
                yield chunk
    finally:
        shutil.rmtree(directory, ignore_errors=True)


ROUTES = [Route("/collections/{collection_id}/download", lambda request: None)]  # metrics labels


# -- the OpenAPI document -----------------------------------------------------------------
def openapi_paths(resources: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI paths of the downloads: one per feature collection of our provider."""
    paths: dict[str, Any] = {}
    for name, feature in table_collections(resources):
        paths[f"/collections/{name}/download"] = {
            "get": {
                "tags": [name],
                "summary": f"Download {name} as GeoPackage, Shapefile, CSV or GeoJSON",
                # filter and filter-lang are described, not declared, as on the items
                # (pygeoapi's document): no schema can say which strings are CQL2
                "description": "The collection, or the features matching bbox, datetime, "
                "property values (`<property>=<value>`) and a CQL2 text filter (`filter=…`, "
                "optionally `filter-lang=cql2-text`), as one file (docs/downloads.md). "
                "Published properties only, never personal data. Anonymous downloads have a "
                "size limit (413 above it); larger ones need an API key, and the largest the "
                "asynchronous `export` process.",
                "operationId": f"download{name.title().replace('_', '')}",
                "parameters": [
                    {
                        "name": "f",
                        "in": "query",
                        "required": False,
                        "description": "gpkg (GeoPackage, default), shp (zipped Shapefile with "
                        ".cpg and .prj), csv (WKT geometry) or geojson",
                        "schema": {"type": "string", "enum": list(FORMATS), "default": "gpkg"},
                    },
                    {
                        "name": "bbox",
                        "in": "query",
                        "required": False,
                        "style": "form",
                        "explode": False,
                        "description": "minx,miny,maxx,maxy in CRS84",
                        "schema": {
                            "type": "array",
                            "minItems": 4,
                            "maxItems": 4,
                            "items": {"type": "number", "minimum": -180, "maximum": 180},
                        },
                    },
                    {"$ref": "#/components/parameters/datetime"},
                    {
                        "name": "crs",
                        "in": "query",
                        "required": False,
                        "style": "form",
                        "explode": False,
                        "description": "The CRS of the coordinates (default CRS84, written as "
                        "EPSG:4326 in files); EPSG:5899 is VN-2000 / TM-3 of the province",
                        "schema": {"type": "string", "enum": list(feature.get("crs") or [CRS84])},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "The file, as an attachment "
                        "(Content-Disposition: attachment; filename=<collection>-<date>.<ext>)",
                        "headers": {
                            "X-Number-Matched": {
                                "description": "The number of features in the file",
                                "schema": {"type": "integer"},
                            }
                        },
                        "content": {},
                    },
                    "400": {"$ref": "#/components/responses/InvalidParameter"},
                    "404": {"$ref": "#/components/responses/NotFound"},
                    "413": {
                        "description": "Too many features for this caller: narrow the query, "
                        "send an API key, or use the export process",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/exception"}
                            }
                        },
                    },
                },
            }
        }
    return paths
