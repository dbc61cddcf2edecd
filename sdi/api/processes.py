"""OGC API Processes: "exposure", and the job manager that keeps each client's jobs its own.

The process is the pygeoapi adapter of :mod:`sdi.hazard.exposure`, run synchronously on the
processes' own bounded pool (nothing stored) or, with ``Prefer: respond-async``, as a job that
:class:`JobManager` keeps in PostgreSQL (:mod:`sdi.jobs`) and shows to the key that created it
and to administrators only (an etl-run job: to every key of its department too). The process
and its access rules: ``docs/warnings.md``; jobs and limits: ``docs/jobs.md``; how the caller
reaches the job manager: ``docs/internals.md``.
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from http import HTTPStatus
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool
from pygeoapi.process.base import (
    BaseProcessor,
    JobNotFoundError,
    JobResultNotFoundError,
    ProcessorExecuteError,
)
from pygeoapi.process.manager.base import BaseManager
from pygeoapi.util import JobStatus, RequestedProcessExecutionMode
from starlette.types import ASGIApp, Receive, Scope, Send

from sdi.api.etl_process import PROCESS_ID as ETL_PROCESS_ID
from sdi.jobs import queue, store
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
        from sdi.hazard import exposure

        try:
            inputs = exposure.checked_inputs(data)
            with process_connection() as conn:
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


def _current_department() -> str | None:
    """The department of the key of the API call this thread serves (None: anonymous)."""
    return getattr(_caller, "department", None)


def encode_caller(key_id: str | None, department: str | None) -> str:
    """The trusted header's value: '' (anonymous), or '<key id> <department>'."""
    return "" if key_id is None else f"{key_id} {department}"


def _decode_caller(value: str | None) -> tuple[str | None, bool]:
    if not value:
        return None, False
    key_id, _, department = value.partition(" ")
    return key_id, department == "*"


class JobManager(BaseManager):
    """Jobs in PostgreSQL, queued for ``sdi worker``; each shown to its creator only.

    Synchronous executions run here and leave nothing behind (no record, no result);
    asynchronous ones are a row of ``jobs.process_jobs`` plus a queued task.
    """

    def __init__(self, manager_def: dict[str, Any]) -> None:
        super().__init__({**manager_def, "output_dir": None})
        self.is_async = True
        self.supports_subscribing = False  # no server-side POSTs to client-given URLs

    @staticmethod
    def _visible(job: dict[str, Any]) -> bool:
        key_id, admin = _current_caller()
        if admin or (key_id is not None and job.get("owner") == key_id):
            return True
        # a delivery (etl-run) is its department's: any key of it sees the job and result
        department = _current_department()
        return (
            key_id is not None
            and department is not None
            and job.get("process_id") == ETL_PROCESS_ID
            and job.get("shared_with") == department
        )

    def execute_process(
        self,
        process_id: str,
        data_dict: dict,
        execution_mode: Any = None,
        requested_outputs: dict | None = None,
        subscriber: Any = None,
        requested_response: str | None = "raw",
    ) -> tuple[str, str, Any, JobStatus, dict[str, str] | None]:
        processor = self.get_processor(process_id)
        options = processor.metadata.get("jobControlOptions", [])
        if (
            execution_mode == RequestedProcessExecutionMode.respond_async
            and "async-execute" in options
        ) or "sync-execute" not in options:
            job_id = self._enqueue(process_id, data_dict, requested_response or "raw")
            applied = RequestedProcessExecutionMode.respond_async.value
            return (
                job_id,
                "application/json",
                None,
                JobStatus.accepted,
                {"Preference-Applied": applied},
            )
        headers = (
            None
            if execution_mode == RequestedProcessExecutionMode.wait
            else {"Preference-Applied": RequestedProcessExecutionMode.wait.value}
        )
        job_id = str(uuid.uuid4())  # never recorded: pygeoapi's signature wants one
        try:
            mimetype, outputs = processor.execute(data_dict)
        except ProcessorExecuteError as exc:
            body = {
                "type": "InvalidParameterValue",
                "code": "InvalidParameterValue",
                "description": exc.message,
            }
            return job_id, "application/json", body, JobStatus.failed, headers
        if requested_response == "document":
            outputs = {"outputs": [outputs]}
        return job_id, mimetype, outputs, JobStatus.successful, headers

    def _enqueue(self, process_id: str, inputs: dict[str, Any], requested_response: str) -> str:
        key_id, _ = _current_caller()
        try:
            with queue.jobs_connection() as conn:
                job_id = store.add(conn, process_id, inputs, key_id, requested_response)
            queue_job = queue.defer_process(job_id)
            with queue.jobs_connection() as conn:
                store.set_queue_job(conn, job_id, queue_job)
        except (psycopg.Error, OSError) as exc:
            LOGGER.error("cannot queue a job: %s", exc)
            raise ProcessorExecuteError(
                user_msg="the job could not be queued; try again later"
            ) from exc
        return job_id

    def add_job(self, job_metadata: dict[str, Any]) -> str:  # pragma: no cover - not used
        raise NotImplementedError("jobs are added by execute_process")

    def update_job(self, job_id: str, update_dict: dict[str, Any]) -> bool:  # pragma: no cover
        raise NotImplementedError("jobs are updated by the worker (sdi.jobs.queue)")

    def get_jobs(self, status: Any = None, limit: int | None = None, offset: int | None = None):
        key_id, admin = _current_caller()
        if not admin and key_id is None:
            return {"jobs": [], "numberMatched": 0}
        with queue.jobs_connection() as conn:
            jobs, matched = store.page(
                conn,
                key_id,
                everyone=admin,
                limit=limit or 100,
                offset=offset or 0,
                shared=(ETL_PROCESS_ID, department)
                if (department := _current_department())
                else None,
            )
        return {"jobs": jobs, "numberMatched": matched}

    def get_job(self, job_id: str) -> dict[str, Any]:
        with queue.jobs_connection() as conn:
            job = store.get(conn, job_id)
        if job is None or not self._visible(job):
            raise JobNotFoundError()
        return job

    def get_job_result(self, job_id: str) -> tuple[str | None, Any]:
        self.get_job(job_id)  # raises for a job the caller may not see
        with queue.jobs_connection() as conn:
            found = store.result(conn, job_id)
        if found is None:
            raise JobResultNotFoundError()
        return found

    def delete_job(self, job_id: str) -> bool:
        self.get_job(job_id)  # raises for a job the caller may not see
        with queue.jobs_connection() as conn:
            return store.delete(conn, job_id)


# -- the processes' own connections -------------------------------------------------------------
_process_pool: ConnectionPool | None = None
_process_pool_lock = threading.Lock()


def process_pool() -> ConnectionPool:
    """The processes' connection pool of this process (server worker or ``sdi worker``):
    separate from the read pool, ``SDI_PROCESS_CONCURRENCY`` connections at most (the worker's
    concurrency when larger), queries cut at ``SDI_PROCESS_TIMEOUT_S``."""
    global _process_pool
    if _process_pool is not None:
        return _process_pool
    from sdi.db import database_url

    settings = get_settings()
    with _process_pool_lock:
        if _process_pool is None:
            timeout_ms = int(settings.process_timeout_s * 1000)
            _process_pool = ConnectionPool(
                database_url(),
                min_size=0,
                max_size=max(settings.process_concurrency, settings.worker_concurrency, 1),
                max_lifetime=1800,
                max_idle=120,
                timeout=5,
                kwargs={
                    "autocommit": True,
                    "prepare_threshold": None,
                    "options": f"-c statement_timeout={timeout_ms} "
                    "-c max_parallel_workers_per_gather=0 -c jit=off",
                },
                check=ConnectionPool.check_connection,  # none stale after a database restart
                name="sdi-processes",
                open=True,
            )
            atexit.register(_process_pool.close)
        return _process_pool


@contextmanager
def process_connection() -> Iterator[psycopg.Connection]:
    """A connection of :func:`process_pool`; busy or away is a clear error, not a 500."""
    try:
        with process_pool().connection() as conn:
            yield conn
    except psycopg.errors.QueryCanceled as exc:
        raise ProcessorExecuteError(
            user_msg=f"the computation took longer than {get_settings().process_timeout_s:g} s; "
            "give a smaller area"
        ) from exc
    except psycopg.OperationalError as exc:  # the pool's timeout included
        LOGGER.error("process connection unavailable: %s", exc)
        raise ProcessorExecuteError(
            user_msg="the service is busy or the warehouse is not reachable; try again later"
        ) from exc


def as_caller(api_function: Callable) -> Callable:
    """A pygeoapi job API function run with its request's caller as the job manager's."""

    @wraps(api_function)
    def call(api: Any, request: Any, *args: Any) -> Any:
        value = request.headers.get(CALLER_HEADER)
        key_id, admin = _decode_caller(value)
        _caller.key_id, _caller.admin = key_id, admin
        _caller.department = value.partition(" ")[2] or None if key_id else None
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
            headers, status, content = api_function(api, request, *args)
            if (
                api_function.__name__ == "execute_process"
                and headers.get("Preference-Applied") != "respond-async"
            ):
                headers.pop("Location", None)  # a synchronous run is not a job: nothing to get
            return headers, status, content
        finally:
            _caller.key_id, _caller.admin, _caller.department = None, False, None

    call.sdi_caller = True  # type: ignore[attr-defined]
    return call


def _execution_problem(request: Any, key_id: str | None) -> tuple[int, str, str] | None:
    """What pygeoapi would answer badly (a 500 for a body that is not an object) or must not
    run (an anonymous asynchronous job): (status, code, message), or None."""
    try:
        body = json.loads(request.data or b"null")
    except (ValueError, UnicodeDecodeError):
        body = None  # not JSON: pygeoapi answers 400 "invalid request data" itself
    except RecursionError:
        return (
            HTTPStatus.BAD_REQUEST,
            "InvalidParameterValue",
            "the request body is nested too deeply to be a process's inputs",
        )
    else:
        if not isinstance(body, dict):
            return (
                HTTPStatus.BAD_REQUEST,
                "InvalidParameterValue",
                'the request body must be a JSON object: {"inputs": {...}}',
            )
        limit = get_settings().process_max_vertices
        if count_positions(body.get("inputs"), limit) > limit:
            return (
                HTTPStatus.BAD_REQUEST,
                "InvalidParameterValue",
                f"the geometry inputs have more than {limit:,} vertices, the limit of this "
                "service (SDI_PROCESS_MAX_VERTICES): simplify the area or split it",
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


def count_positions(value: Any, stop_above: int) -> int:
    """How many coordinate positions (arrays of 2 to 4 numbers) ``value`` holds, counting no
    further than ``stop_above + 1``: GeoJSON geometries anywhere in a process's inputs.

    >>> count_positions({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}, 10)
    4
    """
    count, stack = 0, [value]
    while stack and count <= stop_above:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            if 2 <= len(item) <= 4 and all(
                isinstance(n, int | float) and not isinstance(n, bool) for n in item
            ):
                count += 1
            else:
                stack.extend(item)
    return count


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
                for status, why in (
                    ("413", "The request body is over SDI_MAX_BODY_BYTES"),
                    (
                        "429",
                        "Too many executions at once, or too many requests from this client "
                        "(Retry-After says when to try again)",
                    ),
                ):
                    responses.setdefault(
                        status,
                        {
                            "description": why,
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/exception"}
                                }
                            },
                        },
                    )
            if path.startswith("/jobs/"):
                responses.setdefault("404", {"$ref": "#/components/responses/NotFound"})
