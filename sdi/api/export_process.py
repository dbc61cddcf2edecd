"""OGC API Processes: "export", a download too large to answer at once, as a job.

``POST /processes/export/execution`` with ``{"inputs": {"collection": "parcels", "format":
"gpkg", "filter": "commune_code='22246'", "bbox": [...], "datetime": "...", "crs": "...",
"properties": {"land_use_code": "ODT"}}}``, an API key and ``Prefer: respond-async`` runs
:func:`sdi.api.downloads.export` in the job worker and keeps the file as the job's result
(``/jobs/{id}/results``). The same SQL, the same published properties (never personal ones)
as the ``download`` route; no size limit for a job. Executed synchronously (no ``Prefer``) it
answers the file at once, up to the key holders' limit of the download route
(``SDI_DOWNLOAD_KEY_MAX_FEATURES``).

**Access.** Key holders only (anonymous callers download through
``GET /collections/{id}/download``, up to ``SDI_DOWNLOAD_ANONYMOUS_MAX_FEATURES``): the caller
is written into the inputs by :class:`sdi.api.caller.ProcessCaller` (:data:`CALLER_RULE`), which
answers 401 without a key and 404 for a collection the key may not read — the same answer as
for a collection that does not exist, so an internal collection stays invisible — before a job
exists; the processor checks the key's department again where the job runs. A key exports what
it may read: public collections, internal ones with a key of a department they are open to, all
with an administrator's key. The job, its status and its file are shown to the key that created
it and to administrators (:class:`sdi.api.processes.JobManager`).

pygeoapi's job managers keep a process's result as one value, so the finished file is read
once into the job worker's memory to be stored (the ``download`` route itself streams).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pygeoapi.process.base import BaseProcessor, ProcessorExecuteError

from sdi.api.asgi import NOT_FOUND
from sdi.api.caller import Caller, CallerRefused, CallerRule
from sdi.api.downloads import FORMATS, DownloadError, export
from sdi.layers import Layer, load_layers
from sdi.settings import Settings, get_settings

LOGGER = logging.getLogger("sdi.api.export_process")

PROCESS_METADATA: dict[str, Any] = {
    "version": "1.0.0",
    "id": "export",
    "title": {
        "en": "Export a collection (or a query's result) as a file",
        "vi": "Xuất một lớp dữ liệu (hoặc kết quả truy vấn) ra tệp",
    },
    "description": {
        "en": "The features of a collection matching an optional bbox, CQL2 text "
        "filter, datetime and property values, as a GeoPackage, a zipped Shapefile (with .cpg "
        "and .prj), CSV or GeoJSON, in CRS84 or another CRS of the collection (VN-2000 / TM-3: "
        "http://www.opengis.net/def/crs/EPSG/0/5899). For downloads above the size limit of "
        "GET /collections/{id}/download: run it with Prefer: respond-async. Needs an API "
        "key; exports what the key may read (never personal data); the job and its file are "
        "shown to that key and to administrators only.",
        "vi": "Các đối tượng của một lớp dữ liệu theo phạm vi, bộ lọc CQL2, thời "
        "gian và giá trị thuộc tính, dưới dạng GeoPackage, Shapefile (nén zip), CSV hoặc "
        "GeoJSON, theo hệ tọa độ của lớp (VN-2000 / TM-3). Cần khóa API; chỉ xuất những "
        "lớp khóa đó được đọc (không bao giờ có dữ liệu cá nhân); tác vụ và tệp kết quả "
        "chỉ khóa đã tạo ra nó và quản trị viên xem được.",
    },
    "jobControlOptions": ["async-execute", "sync-execute"],
    "keywords": ["download", "export", "GeoPackage", "Shapefile", "tải về"],
    "links": [],
    "inputs": {
        "collection": {
            "title": "Collection id",
            "schema": {"type": "string"},
            "minOccurs": 1,
            "maxOccurs": 1,
        },
        "format": {
            "title": "File format",
            "schema": {"type": "string", "enum": list(FORMATS), "default": "gpkg"},
            "minOccurs": 0,
            "maxOccurs": 1,
        },
        "bbox": {
            "title": "Bounding box (CRS84)",
            "schema": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4},
            "minOccurs": 0,
            "maxOccurs": 1,
        },
        "filter": {
            "title": "CQL2 text filter",
            "schema": {"type": "string"},
            "minOccurs": 0,
            "maxOccurs": 1,
        },
        "datetime": {
            "title": "Instant or interval (RFC 3339)",
            "schema": {"type": "string"},
            "minOccurs": 0,
            "maxOccurs": 1,
        },
        "crs": {
            "title": "Output CRS URI",
            "schema": {"type": "string"},
            "minOccurs": 0,
            "maxOccurs": 1,
        },
        "properties": {
            "title": "Property values to match (name → value)",
            "schema": {"type": "object"},
            "minOccurs": 0,
            "maxOccurs": 1,
        },
    },
    "outputs": {
        "file": {
            "title": "The exported file",
            "schema": {
                "type": "string",
                "contentEncoding": "binary",
                "contentMediaType": "application/geopackage+sqlite3",
            },
        }
    },
    "example": {"inputs": {"collection": "lamps", "format": "gpkg", "filter": "status='ok'"}},
}


def readable(caller: Caller, settings: Settings) -> list[Layer]:
    """The feature layers ``caller``'s key may read (as the access control decides for it)."""
    from sdi.api.auth import AccessPolicy, Identity

    layers = [layer for layer in load_layers(settings) if layer.kind == "features"]
    if caller.anonymous:
        return []
    policy = AccessPolicy(layers, [layer.id for layer in layers])
    identity = Identity(caller.key_id, caller.department)
    return [layer for layer in layers if policy.can_see(identity, layer.id)]


def _check_caller(caller: Caller, inputs: dict[str, Any]) -> None:
    collection = inputs.get("collection")
    if not isinstance(collection, str) or not collection:
        raise CallerRefused(400, "InvalidParameterValue", "input 'collection' is required")
    if collection not in {x.id for x in readable(caller, get_settings())}:
        raise CallerRefused(404, "NotFound", NOT_FOUND)
    fmt = inputs.get("format") or "gpkg"
    if fmt not in FORMATS:
        raise CallerRefused(400, "InvalidParameterValue", f"format: one of {', '.join(FORMATS)}")


# sdi.api.caller.ProcessCaller: 401 without a key, 404 for what the key may not read
CALLER_RULE = CallerRule(
    anonymous="the export process needs an API key (X-API-Key header); without one, download "
    "through GET /collections/{id}/download (up to SDI_DOWNLOAD_ANONYMOUS_MAX_FEATURES "
    "features)",
    check=_check_caller,
)


class ExportProcessor(BaseProcessor):
    """The "export" process (see the module docstring)."""

    def __init__(self, processor_def: dict[str, Any]) -> None:
        super().__init__(processor_def, PROCESS_METADATA)

    def execute(self, data: dict[str, Any], outputs: Any = None) -> tuple[str, bytes]:
        settings = get_settings()
        inputs = data.get("inputs", data) if isinstance(data, dict) else {}
        caller = Caller.from_inputs(inputs) or Caller()
        collection = inputs.get("collection")
        if not collection:  # also a body without "inputs": ProcessCaller let it through as is
            raise ProcessorExecuteError(
                user_msg='input \'collection\' is required: {"inputs": {"collection": …}}'
            )
        if caller.anonymous:
            raise ProcessorExecuteError(user_msg="the export process needs an API key")
        fmt = inputs.get("format") or "gpkg"
        layers = readable(caller, settings)
        if not isinstance(collection, str) or collection not in {x.id for x in layers}:
            raise ProcessorExecuteError(user_msg=NOT_FOUND)
        if fmt not in FORMATS:
            raise ProcessorExecuteError(user_msg=f"format: one of {', '.join(FORMATS)}")
        # at once, the file travels in the answer: the download route's limit for key holders
        limit = None if caller.respond_async else settings.download_key_max_features
        directory = Path(tempfile.mkdtemp(prefix="export-"))  # 0700
        target = directory / f"{collection}.{FORMATS[fmt].extension}"
        try:
            count = export(collection, inputs, fmt, target, settings, layers, limit)
            LOGGER.info("export of %s: %d features, %s", collection, count, fmt)
            return FORMATS[fmt].media_type, target.read_bytes()
        except DownloadError as exc:
            if exc.status == 413:
                raise ProcessorExecuteError(
                    user_msg=f"{exc}; run the export as a job (header Prefer: respond-async)"
                ) from None
            raise ProcessorExecuteError(user_msg=str(exc)) from None
        except ProcessorExecuteError:
            raise
        except Exception as exc:  # never a database message or a traceback to the client
            LOGGER.exception("export process failed")
            raise ProcessorExecuteError(
                user_msg="the export failed; the error has been logged"
            ) from exc
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def __repr__(self) -> str:
        return "<ExportProcessor>"
