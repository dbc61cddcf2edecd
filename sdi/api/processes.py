"""OGC API Processes: "exposure", and the job manager that keeps each client's jobs its own.

**The process.** ``POST /processes/exposure/execution`` with either

- ``{"inputs": {"area": <GeoJSON Polygon or MultiPolygon, CRS84>}}``: what lies in that area, or
- ``{"inputs": {"gauge": "G-HL-01", "water_level_m": 3.4}}``: what a warning of that gauge
  would expose if the river stood at that level (level and flood zones chosen exactly as for a
  real warning),

answers a GeoJSON Feature: the area as geometry and, as properties, the figures of a warning's
exposure (buildings by use, residents estimate, parcels by land-use group, critical facilities,
street lamps, water-pipe length, cameras; ``docs/warnings.md``) and, where flood-depth rasters
are loaded, their zonal statistics over the area (``sdi.hazard.rasters.zonal_stats``). The
computation is the hazard package's (``sdi.hazard.exposure``, with the warnings' own SQL: one
definition of "exposed"); this module is only its pygeoapi adapter.

Synchronous by default; asynchronous with ``Prefer: respond-async`` (201, ``Location:
/jobs/{id}``, the result at ``/jobs/{id}/results``), run by :class:`JobManager`: pygeoapi's
TinyDB manager with its file and the results under ``<state dir>/server/jobs/`` (shared by the
server's workers; a job runs in a thread of the worker that accepted it).

**Who may run it, who sees the jobs** (``docs/warnings.md``, "The exposure process"):

- executing is a read of public layers, so it is not a "write": anyone may execute
  synchronously (:mod:`sdi.api.auth` lets this one POST through);
- an asynchronous job leaves a result on the server, so it needs an API key: each job records
  the key that created it (its public id), and ``/jobs``, ``/jobs/{id}`` and
  ``/jobs/{id}/results`` show a job to that key and to administrators only — to anyone else it
  does not exist (404, as an unknown job). Job ids are time-based UUIDs (guessable), so the
  check, not the id, is what protects a result. Anonymous clients see no jobs;
- callback URLs (``subscriber``) are not supported: the server would POST to any URL a client
  names.

pygeoapi gives the job manager no request, so the caller reaches it through the API functions
that pygeoapi's routes call (wrapped by :func:`as_caller`, installed by
:mod:`sdi.api.pygeoapi_patches`), which run in a worker thread each:
the caller is a thread-local set for the duration of one API call, from a header the
:class:`CallerHeader` middleware writes from the access-control identity (a client's own
header of that name is always removed).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from functools import wraps
from http import HTTPStatus
from pathlib import Path
from typing import Any

import tinydb
from pygeoapi.process.base import BaseProcessor, JobNotFoundError, ProcessorExecuteError
from pygeoapi.process.manager.tinydb_ import TinyDBManager
from starlette.types import ASGIApp, Receive, Scope, Send

from sdi.settings import get_settings

LOGGER = logging.getLogger("sdi.api.processes")

CALLER_HEADER = "x-sdi-caller"

PROCESS_METADATA: dict[str, Any] = {
    "version": "1.0.0",
    "id": "exposure",
    "title": {
        "vi": "Mức độ phơi nhiễm lũ của một vùng, hoặc của một trạm đo ở một mực nước giả định",
        "en": "Flood exposure of an area, or of a gauge at a hypothetical water level",
    },
    "description": {
        "vi": "Những gì nằm trong một vùng: công trình theo loại sử dụng, ước tính số dân, "
        "thửa đất theo nhóm mục đích sử dụng, cơ sở trọng yếu (trường học, cơ sở y tế, cơ quan "
        "nhà nước), đèn chiếu sáng, chiều dài đường ống cấp nước và camera, kèm thống kê độ sâu "
        "ngập khi đã nạp bản đồ độ sâu. Vùng là một đa giác GeoJSON (CRS84) trong tỉnh, hoặc các "
        "vùng ngập mà cảnh báo của một trạm đo sẽ bao phủ ở một mực nước cho trước. Các chỉ số "
        "được định nghĩa như trong cảnh báo lũ (docs/warnings.md). Thực thi bất đồng bộ "
        "(Prefer: respond-async) cần khóa API; mỗi tác vụ chỉ khóa đã tạo ra nó mới xem được.",
        "en": "What lies in an area: buildings by use, an estimate of residents, parcels by "
        "land-use group, critical facilities (schools, health facilities, state offices), "
        "street lamps, length of water pipes and cameras, with flood-depth statistics where "
        "depth rasters are loaded. The area is a GeoJSON polygon (CRS84) inside the province, "
        "or the flood zones a warning of a gauge would cover at a given water level. The "
        "figures are defined as for the flood warnings (docs/warnings.md). Asynchronous "
        "execution (Prefer: respond-async) needs an API key; jobs are visible to their key only.",
    },
    "jobControlOptions": ["sync-execute", "async-execute"],
    "keywords": ["flood", "exposure", "warning", "hazard", "phơi nhiễm", "cảnh báo lũ"],
    "links": [],
    "inputs": {
        "area": {
            "title": {"vi": "Vùng", "en": "Area"},
            "description": {
                "vi": "Một Polygon hoặc MultiPolygon GeoJSON (hoặc một Feature chứa nó) theo CRS84 "
                "(kinh độ/vĩ độ), nằm trong tỉnh. Cho vùng này, hoặc gauge và water_level_m.",
                "en": "A GeoJSON Polygon or MultiPolygon (or a Feature with one) in CRS84 "
                "(lon/lat), inside the province. Give this, or gauge and water_level_m.",
            },
            "schema": {"type": "object", "contentMediaType": "application/geo+json"},
            "minOccurs": 0,
            "maxOccurs": 1,
        },
        "gauge": {
            "title": {"vi": "Mã trạm đo", "en": "Gauge code"},
            "description": {
                "vi": "Một trạm đo mực nước của tập dữ liệu gauges, ví dụ G-HL-01",
                "en": "A river gauge of the gauges collection, e.g. G-HL-01",
            },
            "schema": {"type": "string"},
            "minOccurs": 0,
            "maxOccurs": 1,
        },
        "water_level_m": {
            "title": {"vi": "Mực nước giả định (m)", "en": "Hypothetical water level (m)"},
            "description": {
                "vi": "Theo cao độ chuẩn của trạm đo; dùng cùng gauge",
                "en": "On the gauge's datum; with gauge",
            },
            "schema": {"type": "number"},
            "minOccurs": 0,
            "maxOccurs": 1,
        },
    },
    "outputs": {
        "exposure": {
            "title": {"vi": "Mức độ phơi nhiễm", "en": "Exposure"},
            "description": {
                "vi": "Một Feature GeoJSON: vùng, và các chỉ số phơi nhiễm là thuộc tính của nó",
                "en": "A GeoJSON Feature: the area, and the exposure figures as properties",
            },
            "schema": {"type": "object", "contentMediaType": "application/geo+json"},
        }
    },
    "example": {"inputs": {"gauge": "G-HL-01", "water_level_m": 3.4}},
}


class ExposureProcessor(BaseProcessor):
    """The "exposure" process (see the module docstring)."""

    def __init__(self, processor_def: dict[str, Any]) -> None:
        super().__init__(processor_def, PROCESS_METADATA)

    def execute(self, data: dict[str, Any], outputs: Any = None) -> tuple[str, dict[str, Any]]:
        from sdi.api.db import connection
        from sdi.hazard import exposure

        try:
            inputs = exposure.checked_inputs(data)
            with connection() as conn:
                return "application/json", exposure.exposure(conn, inputs)
        except ValueError as exc:  # ExposureInputError: the input named, for the client
            raise ProcessorExecuteError(user_msg=str(exc)) from None
        except ProcessorExecuteError:
            raise
        except Exception as exc:  # never a database message or a traceback to the client
            LOGGER.exception("exposure process failed")
            raise ProcessorExecuteError(
                user_msg="the exposure could not be computed; the error has been logged"
            ) from exc

    def __repr__(self) -> str:
        return "<ExposureProcessor>"


# -- jobs ---------------------------------------------------------------------------------------
_caller = threading.local()


def _current_caller() -> tuple[str | None, bool]:
    """(key id or None for anonymous, administrator?) of the API call this thread serves."""
    return getattr(_caller, "key_id", None), getattr(_caller, "admin", False)


def encode_caller(key_id: str | None, department: str | None) -> str:
    """The trusted header's value: '' (anonymous), or '<key id> <department>'."""
    return "" if key_id is None else f"{key_id} {department}"


def _decode_caller(value: str | None) -> tuple[str | None, bool]:
    if not value:
        return None, False
    key_id, _, department = value.partition(" ")
    return key_id, department == "*"


class JobManager(TinyDBManager):
    """pygeoapi's TinyDB manager, with each job's owner and jobs shown to their owner only."""

    def __init__(self, manager_def: dict[str, Any]) -> None:
        jobs = get_settings().state_dir / "server" / "jobs"
        jobs.mkdir(parents=True, exist_ok=True)
        manager_def = {
            **manager_def,
            "connection": manager_def.get("connection") or str(jobs / "jobs.tinydb.json"),
            "output_dir": manager_def.get("output_dir") or str(jobs),
        }
        super().__init__(manager_def)
        self.supports_subscribing = False  # no server-side POSTs to client-given URLs

    @staticmethod
    def _visible(job: dict[str, Any]) -> bool:
        key_id, admin = _current_caller()
        return admin or (key_id is not None and job.get("owner") == key_id)

    def add_job(self, job_metadata: dict[str, Any]) -> str:
        key_id, _ = _current_caller()
        return super().add_job({**job_metadata, "owner": key_id})

    def get_jobs(self, status: Any = None, limit: int | None = None, offset: int | None = None):
        key_id, admin = _current_caller()
        with self._db() as db:
            if admin:
                jobs = db.all()
            elif key_id is None:
                jobs = []
            else:
                jobs = db.search(tinydb.where("owner") == key_id)
        # newest first before paging (pygeoapi sorts only the page it is given)
        jobs = sorted(jobs, key=lambda job: job.get("started") or "", reverse=True)
        matched = len(jobs)
        jobs = jobs[offset or 0 :]
        return {"jobs": jobs[:limit] if limit else jobs, "numberMatched": matched}

    def get_job(self, job_id: str) -> dict[str, Any]:
        job = super().get_job(job_id)
        if not self._visible(job):
            raise JobNotFoundError()
        return job

    def delete_job(self, job_id: str) -> bool:
        job = self.get_job(job_id)  # raises for a job the caller may not see
        location = job.get("location")
        if location and location != "None":
            Path(location).unlink(missing_ok=True)
        with self._db() as db:
            return bool(db.remove(tinydb.where("identifier") == job_id))


def as_caller(api_function: Callable) -> Callable:
    """A pygeoapi job API function run with its request's caller as the job manager's."""

    @wraps(api_function)
    def call(api: Any, request: Any, *args: Any) -> Any:
        key_id, admin = _decode_caller(request.headers.get(CALLER_HEADER))
        _caller.key_id, _caller.admin = key_id, admin
        try:
            problem = (
                _execution_problem(request, key_id)
                if api_function.__name__ == "execute_process"
                else None
            )
            if problem is not None:
                status, code, message = problem
                return api.get_exception(
                    status,
                    request.get_response_headers(api.default_locale, **api.api_headers),
                    request.format,
                    code,
                    message,
                )
            return api_function(api, request, *args)
        finally:
            _caller.key_id, _caller.admin = None, False

    call.sdi_caller = True  # type: ignore[attr-defined]
    return call


def _execution_problem(request: Any, key_id: str | None) -> tuple[int, str, str] | None:
    """What pygeoapi would answer badly (a 500 for a body that is not an object) or must not
    run (an anonymous asynchronous job): (status, code, message), or None."""
    try:
        body = json.loads(request.data or b"null")
    except (ValueError, UnicodeDecodeError):
        body = None  # not JSON: pygeoapi answers 400 "invalid request data" itself
    else:
        if not isinstance(body, dict):
            return (
                HTTPStatus.BAD_REQUEST,
                "InvalidParameterValue",
                'the request body must be a JSON object: {"inputs": {...}}',
            )
    if key_id is None and _wants_async(request):
        return (
            HTTPStatus.UNAUTHORIZED,
            "Unauthorized",
            "asynchronous execution needs an API key (X-API-Key header): a job's result is "
            "kept for the key that created it; without a key, execute synchronously (no "
            "Prefer: respond-async)",
        )
    return None


def _wants_async(request: Any) -> bool:
    prefer = request.headers.get("Prefer", request.headers.get("prefer")) or ""
    return "respond-async" in prefer


class CallerHeader:
    """ASGI middleware (inside access control): writes the caller header from the identity."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(("/processes", "/jobs")):
            from sdi.api.auth import ANONYMOUS, SCOPE_IDENTITY

            identity = scope.get(SCOPE_IDENTITY, ANONYMOUS)
            value = encode_caller(identity.key_id, identity.department)
            headers = [(k, v) for k, v in scope["headers"] if k.lower() != CALLER_HEADER.encode()]
            headers.append((CALLER_HEADER.encode(), value.encode("latin-1")))
            scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)


def document(openapi: dict[str, Any]) -> None:
    """Make the OpenAPI operations of the processes say what they answer (JSON descriptions;
    400 for bad inputs, 401 for an anonymous asynchronous execution, 404 for others' jobs)."""
    paths = openapi.get("paths") or {}
    for path, item in paths.items():
        if not path.startswith(("/processes", "/jobs")):
            continue
        for method, operation in (item or {}).items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            if method == "get" and "200" in responses:
                # pygeoapi's generic shared response (no JSON): this operation's own
                if responses["200"].get("$ref") == "#/components/responses/200":
                    responses["200"] = {"description": "successful operation", "content": {}}
                content = responses["200"].setdefault("content", {})
                content.setdefault("application/json", {"schema": {"type": "object"}})
            if path.endswith("/execution"):
                responses.setdefault("400", {"$ref": "#/components/responses/InvalidParameter"})
                responses.setdefault(
                    "401",
                    {
                        "description": "Asynchronous execution without an API key",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/exception"}
                            }
                        },
                    },
                )
            if path.startswith("/jobs/"):
                responses.setdefault("404", {"$ref": "#/components/responses/NotFound"})
