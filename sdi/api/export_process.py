"""OGC API Processes: "export", a download too large to answer at once, as a job.

``POST /processes/export/execution`` with ``{"inputs": {"collection": "parcels", "format":
"gpkg", "filter": "commune_code='22246'", "bbox": [...], "datetime": "...", "crs": "...",
"properties": {"land_use_code": "ODT"}}}`` and ``Prefer: respond-async`` runs
:func:`sdi.api.downloads.export` in whatever job manager the server is configured with and
keeps the file as the job's result (``/jobs/{id}/results``). The same SQL, the same published
properties (never personal ones) as the ``download`` route; no size limit.

**Access.** The job manager gives a processor no caller, so this process exports only the
collections everyone may see (``access: public``, no ``departments``): an internal collection
is "not found" here, exactly as in the catalogue. Executing it is, for
:mod:`sdi.api.auth`, a write by default (an administrator's key) until the process is listed
there among those any key may run.

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

from sdi.api.downloads import FORMATS, DownloadError, export
from sdi.layers import load_layers
from sdi.settings import get_settings

LOGGER = logging.getLogger("sdi.api.export_process")

PROCESS_METADATA: dict[str, Any] = {
    "version": "1.0.0",
    "id": "export",
    "title": {
        "en": "Export a collection (or a query's result) as a file",
        "vi": "Xuất một lớp dữ liệu (hoặc kết quả truy vấn) ra tệp",
    },
    "description": {
        "en": "The features of a public collection matching an optional bbox, CQL2 text "
        "filter, datetime and property values, as a GeoPackage, a zipped Shapefile (with .cpg "
        "and .prj), CSV or GeoJSON, in CRS84 or another CRS of the collection (VN-2000 / TM-3: "
        "http://www.opengis.net/def/crs/EPSG/0/5899). For downloads above the size limit of "
        "GET /collections/{id}/download: run it with Prefer: respond-async.",
        "vi": "Các đối tượng của một lớp dữ liệu công khai theo phạm vi, bộ lọc CQL2, thời "
        "gian và giá trị thuộc tính, dưới dạng GeoPackage, Shapefile (nén zip), CSV hoặc "
        "GeoJSON, theo hệ tọa độ của lớp (VN-2000 / TM-3).",
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


class ExportProcessor(BaseProcessor):
    """The "export" process (see the module docstring)."""

    def __init__(self, processor_def: dict[str, Any]) -> None:
        super().__init__(processor_def, PROCESS_METADATA)

    def execute(self, data: dict[str, Any], outputs: Any = None) -> tuple[str, bytes]:
        settings = get_settings()
        inputs = data.get("inputs", data) if isinstance(data, dict) else {}
        collection = inputs.get("collection")
        fmt = inputs.get("format") or "gpkg"
        public = [
            layer
            for layer in load_layers(settings)
            if layer.access == "public" and not layer.departments
        ]
        if not isinstance(collection, str) or collection not in {x.id for x in public}:
            raise ProcessorExecuteError(user_msg=f"collection {collection!r} not found")
        if fmt not in FORMATS:
            raise ProcessorExecuteError(user_msg=f"format: one of {', '.join(FORMATS)}")
        directory = Path(tempfile.mkdtemp(prefix="export-"))  # 0700
        target = directory / f"{collection}.{FORMATS[fmt].extension}"
        try:
            count = export(collection, inputs, fmt, target, settings, public)
            LOGGER.info("export of %s: %d features, %s", collection, count, fmt)
            return FORMATS[fmt].media_type, target.read_bytes()
        except DownloadError as exc:
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
