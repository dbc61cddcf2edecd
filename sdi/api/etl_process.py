"""OGC API Process ``etl-run``: a department delivers without shell access.

``POST /processes/etl-run/execution`` (asynchronous: ``Prefer: respond-async``) with an API key
of the department that owns the job — the inbox folder its ``source.path`` starts with
(``land/parcels_*.shp`` → ``land``; ``sdi/etl/inbox.py``) — or an administrator's key::

    {"inputs": {"job": "utility_street_lamps",
                "file": {"filename": "street_lamps.gpkg", "value": "<base64>",
                         "encoding": "base64"}}}

``file`` is optional: without it the job runs on what is in the inbox. With it the upload
(one file, or a zip of a Shapefile's parts or of several files; at most ``SDI_UPLOAD_MAX_MB``)
must match the job's ``source.path``; it replaces the department's files that match it in
the inbox, and the job runs on it. ``dry_run: true`` validates and counts without writing.

The result is the run's report (``application/json``): status, message, counts, the rejects
as CSV text, the detection evidence (text encoding, the file's own CRS) and the HTML page of
``sdi etl report RUN --html``. A refused delivery is a result too (status ``failed`` or
``rejected``, with the reason); a request the process cannot take (unknown job, a key of
another department, a too-large or unsafe upload) is an error.

Who may run it is decided before the job exists, by :data:`CALLER_RULE` of
:class:`sdi.api.caller.ProcessCaller` (ASGI middleware, inside the access control): it reads
the caller's department from the identity the access control found and writes it into the
inputs as ``_caller`` (a client's own ``_caller`` is dropped), so the processor — run by
whatever job manager is configured, in a thread or a queue worker — checks the same
department again. The job and its result are shown to every
key of the department that owns the job (``_caller.job_department``, recorded with it), and to
administrators; to any other key, and to anonymous callers, the job does not exist (404).
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import logging
import shutil
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from pygeoapi.process.base import BaseProcessor, ProcessorExecuteError

from sdi.api.caller import CALLER_INPUT, Caller, CallerRefused, CallerRule
from sdi.errors import SdiError
from sdi.settings import Settings, get_settings

LOGGER = logging.getLogger("sdi.api.etl_process")
PROCESS_ID = "etl-run"
ADMIN = "*"

PROCESS_METADATA: dict[str, Any] = {
    "version": "1.0.0",
    "id": PROCESS_ID,
    "title": {"en": "Deliver a source: run its ETL job, on an upload or on the inbox"},
    "description": {
        "en": "Runs one ETL job (etl/jobs/<job>.yml) and answers the run's report: counts, "
        "rejected rows as CSV, detection evidence (text encoding, CRS) and an HTML page. "
        "Upload the delivery as a base64 file or zip (size-limited), or omit it to load what "
        "is in the department's inbox folder. Needs an API key of the department that owns "
        "the job (the inbox folder of its source.path) or an administrator's key. Run it "
        "asynchronously (Prefer: respond-async); the job and its result are shown to every key "
        "of that department and to administrators."
    },
    "jobControlOptions": ["async-execute", "sync-execute"],
    "keywords": ["etl", "delivery", "upload", "inbox", "giao nộp dữ liệu"],
    "links": [],
    "inputs": {
        "job": {
            "title": "Job",
            "description": "Name of the job spec (etl/jobs/<job>.yml), e.g. utility_street_lamps",
            "schema": {"type": "string"},
            "minOccurs": 1,
            "maxOccurs": 1,
        },
        "file": {
            "title": "Delivered file",
            "description": "A file or a zip, base64: {filename, value, encoding: base64}. Its "
            "name must match the job's source.path. Omit it to run on the inbox.",
            "schema": {
                "type": "object",
                "required": ["filename", "value"],
                "properties": {
                    "filename": {"type": "string"},
                    "value": {"type": "string", "contentEncoding": "base64"},
                    "encoding": {"const": "base64"},
                    "mediaType": {"type": "string"},
                },
            },
            "minOccurs": 0,
            "maxOccurs": 1,
        },
        "dry_run": {
            "title": "Dry run",
            "description": "Validate and count changes; write nothing",
            "schema": {"type": "boolean", "default": False},
            "minOccurs": 0,
            "maxOccurs": 1,
        },
    },
    "outputs": {
        "report": {
            "title": "Run report",
            "description": "status, message, counts, rejects_csv, evidence, report_html",
            "schema": {"type": "object", "contentMediaType": "application/json"},
        }
    },
    "example": {"inputs": {"job": "utility_street_lamps"}},
}


class DeliveryError(ValueError):
    """The request cannot be taken (named for the client)."""


# -- who asks ---------------------------------------------------------------------------------


def _max_body() -> tuple[int, str]:
    settings = get_settings()
    return (
        settings.upload_max_mb * 1024 * 1024 * 4 // 3 + 65536,  # base64 and JSON
        f"the upload is larger than {settings.upload_max_mb} MB (SDI_UPLOAD_MAX_MB); drop the "
        "file in the department's inbox folder instead and run without 'file'",
    )


def _check_caller(caller: Caller, inputs: dict[str, Any]) -> dict[str, Any]:
    try:
        owner = job_department(inputs.get("job"), get_settings())
        check_department(caller.department, owner, inputs.get("job"))
    except DeliveryError as exc:
        if "may not" in str(exc):
            raise CallerRefused(403, "Forbidden", str(exc)) from None
        raise CallerRefused(400, "InvalidParameterValue", str(exc)) from None
    # recorded with the caller: every key of this department sees the job and its result
    # (sdi.api.processes.JobManager), whoever of them, or an administrator, ran it
    return {"job_department": owner}


# sdi.api.caller.ProcessCaller: 401 without a key, 413 above the upload limit, 403 for a key
# of a department that does not own the job, before a job is created
CALLER_RULE = CallerRule(
    anonymous="etl-run needs an API key of the department that owns the job (X-API-Key)",
    max_body=_max_body,
    check=_check_caller,
)


def job_department(job: Any, settings: Settings) -> str | None:
    """The department (inbox folder) that owns ``job``; DeliveryError for an unknown job."""
    from sdi.etl.inbox import department_of
    from sdi.etl.spec import discover_jobs, load_job

    if not isinstance(job, str) or not job:
        raise DeliveryError("input 'job' is required: the name of a job spec in etl/jobs/")
    path = discover_jobs(settings).get(job)
    if path is None:
        raise DeliveryError(f"unknown job {job!r} (the job specs are etl/jobs/<job>.yml)")
    try:
        return department_of(load_job(path, settings))
    except SdiError as exc:
        raise DeliveryError(f"job {job}: its spec does not load: {exc}") from None


def check_department(department: str | None, owner: str | None, job: Any) -> None:
    if department == ADMIN:
        return
    if owner is None or department != owner:
        raise DeliveryError(
            f"a key of department {department!r} may not deliver job {job!r}: it belongs to "
            f"{owner or 'the administrators'} (its inbox folder)"
        )


# -- the upload -------------------------------------------------------------------------------


def _safe_name(name: str) -> str:
    """The file name of an upload or zip member, without any folder (no path escapes)."""
    base = PurePosixPath(name.replace("\\", "/")).name
    if not base or base in (".", "..") or base.startswith("."):
        raise DeliveryError(f"unsafe or empty file name {name!r} in the upload")
    return base


def unpack(file: Any, settings: Settings, into: Path) -> list[Path]:
    """Decode the ``file`` input into ``into``; a zip is extracted (names without folders)."""
    if not isinstance(file, dict) or not isinstance(file.get("value"), str):
        raise DeliveryError("input 'file' is {filename, value (base64), encoding: base64}")
    if file.get("encoding", "base64") != "base64":
        raise DeliveryError("input 'file': only encoding base64 is taken")
    name = _safe_name(str(file.get("filename") or ""))
    limit = settings.upload_max_mb * 1024 * 1024
    if len(file["value"]) * 3 // 4 > limit:
        raise DeliveryError(f"the upload is larger than {settings.upload_max_mb} MB")
    try:
        data = base64.b64decode(file["value"], validate=True)
    except (binascii.Error, ValueError):
        raise DeliveryError("input 'file': value is not valid base64") from None
    into.mkdir(parents=True, exist_ok=True)
    target = into / name
    target.write_bytes(data)
    if not name.lower().endswith(".zip"):
        return [target]
    try:
        with zipfile.ZipFile(target) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            if sum(m.file_size for m in members) > limit:
                raise DeliveryError(
                    f"the zip unpacks to more than {settings.upload_max_mb} MB (SDI_UPLOAD_MAX_MB)"
                )
            out = []
            for member in members:
                member_name = _safe_name(member.filename)
                with archive.open(member) as source, (into / member_name).open("wb") as sink:
                    shutil.copyfileobj(source, sink)
                out.append(into / member_name)
    except zipfile.BadZipFile:
        raise DeliveryError(f"{name}: corrupt file: not a readable zip archive") from None
    target.unlink()
    return out


def deliver(job: Any, files: list[Path], settings: Settings) -> list[Path]:
    """Put the uploaded files in the department's inbox folder, in place of the files that
    match the job's ``source.path``; the files placed."""
    from sdi.etl.readers import SIDECARS

    pattern = PurePosixPath(job.source.path)
    folder = settings.source_dir / pattern.parent
    wanted = [f for f in files if fnmatch.fnmatch(f.name, pattern.name)]
    if not wanted:
        raise DeliveryError(
            f"the upload holds {', '.join(f.name for f in files) or 'nothing'}; job {job.name} "
            f"reads {job.source.path} (source.path): no file of the upload matches it"
        )
    stems = {f.stem for f in wanted}
    keep = [f for f in files if f.stem in stems]  # the matched files and their sidecars
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob(pattern.name):
        for part in [old, *(old.with_suffix(s) for s in SIDECARS)]:
            part.unlink(missing_ok=True)
    placed = []
    for f in keep:
        shutil.move(str(f), folder / f.name)
        placed.append(folder / f.name)
    return placed


# -- the processor ----------------------------------------------------------------------------


def run_report(run_id: int | None, settings: Settings) -> dict[str, Any]:
    """The report of run ``run_id``: what the process answers."""
    from sdi.db import connect
    from sdi.etl.report_html import collect, rejects_csv, render

    with connect(settings) as conn:
        if run_id is None:
            raise DeliveryError("the run did not start")
        report = collect(conn, run_id, settings)
    run = report.run
    options = run["options"] or {}
    return {
        "run_id": run["run_id"],
        "job": run["job"],
        "status": run["status"],
        "message": run["message"],
        "counts": {
            name: run[name]
            for name in (
                "rows_read",
                "added",
                "updated",
                "unchanged",
                "retired",
                "rejected",
                "repaired",
            )
        },
        "rejects_per_reason": [{"reason": w, "rows": n} for w, n, _ in report.reasons],
        "rejects_csv": rejects_csv(report),
        "evidence": {
            "sources": [
                {
                    "path": Path(s[0]).name,
                    "bytes": s[1],
                    "sha256": s[2],
                    "encoding": s[4],
                    "source_srid": s[5],
                }
                for s in report.sources
            ],
            "encodings": options.get("encodings") or {},
            "crs": options.get("crs") or {},
            "warnings": options.get("warnings") or [],
        },
        "report_html": render(report),
    }


def _latest_run(job: str, settings: Settings) -> int | None:
    from sdi.db import connect

    with connect(settings) as conn:
        row = conn.execute(
            "SELECT max(run_id) FROM etl.runs WHERE job = %s AND status <> 'running'", (job,)
        ).fetchone()
    return row[0] if row else None


def execute_delivery(data: dict[str, Any], settings: Settings | None = None) -> dict[str, Any]:
    """Check, place the upload, run the job, and answer its report."""
    from sdi.db import database_url
    from sdi.etl.runner import run_job
    from sdi.etl.spec import discover_jobs, load_job

    settings = settings or get_settings()
    caller = data.get(CALLER_INPUT)
    if not isinstance(caller, dict):
        raise DeliveryError("etl-run needs an API key of the department that owns the job")
    name = data.get("job")
    if not isinstance(name, str):
        raise DeliveryError("etl-run needs the name of a job (input `job`)")
    owner = job_department(name, settings)
    check_department(caller.get("department"), owner, name)
    job = load_job(discover_jobs(settings)[name], settings)
    if data.get("file") is not None:
        uploads = settings.state_dir / "uploads"
        uploads.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=uploads) as tmp:
            deliver(job, unpack(data["file"], settings, Path(tmp)), settings)
    before = _latest_run(job.name, settings) or 0
    try:
        result = run_job(
            job,
            database_url(settings),
            force=True,
            dry_run=bool(data.get("dry_run")),
            settings=settings,
        )
        run_id = result.run_id
    except SdiError as exc:
        run_id = _latest_run(job.name, settings) or 0
        if run_id <= before:  # refused before a run began (a spec error, no file)
            raise DeliveryError(str(exc)) from None
        return run_report(run_id, settings)  # the refused delivery's report
    if result.run_id is None:
        raise DeliveryError(result.message or "the run did not start")
    return run_report(result.run_id, settings)


class EtlRunProcessor(BaseProcessor):
    """The ``etl-run`` process (see the module docstring)."""

    def __init__(self, processor_def: dict[str, Any]) -> None:
        super().__init__(processor_def, PROCESS_METADATA)

    def execute(self, data: dict[str, Any], outputs: Any = None) -> tuple[str, dict[str, Any]]:
        try:
            return "application/json", execute_delivery(data)
        except DeliveryError as exc:
            raise ProcessorExecuteError(user_msg=str(exc)) from None
        except SdiError as exc:
            raise ProcessorExecuteError(user_msg=str(exc)) from None
        except Exception as exc:  # never a traceback to the client
            LOGGER.exception("etl-run failed")
            raise ProcessorExecuteError(
                user_msg="the delivery could not be run; the error has been logged"
            ) from exc

    def __repr__(self) -> str:
        return "<EtlRunProcessor>"
