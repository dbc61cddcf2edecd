"""Run an ETL job: read → normalise → validate → stage → merge, all or nothing.

The run is recorded in ``etl.runs`` before any data moves (so a killed run is visible as
interrupted), and everything that touches the warehouse happens in one transaction: a crash,
a kill or a bad file leaves every target table exactly as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg

from sdi import runs
from sdi.errors import (
    JobLockedError,
    RejectThresholdExceeded,
    SdiError,
    SourceError,
    WarehouseRefused,
)
from sdi.etl.readers import SIDECARS
from sdi.etl.results import RunResult
from sdi.etl.rules import load_rule
from sdi.etl.spec import JobSpec
from sdi.settings import Settings, get_settings
from sdi.sql import one


@dataclass
class SourceFile:
    path: Path
    sha256: str
    size_bytes: int
    modified_at: datetime

    @staticmethod
    def parts(path: Path) -> list[Path]:
        """The file and the sidecar files it has."""
        return [p for p in [path, *(path.with_suffix(s) for s in SIDECARS)] if p.exists()]

    @classmethod
    def size(cls, path: Path) -> int:
        return sum(part.stat().st_size for part in cls.parts(path))

    @classmethod
    def fingerprint(cls, path: Path) -> SourceFile:
        """Hash, size and latest mtime of the file and its sidecars (what ``--changed``
        compares: ``sdi/etl/inbox.py``)."""
        from sdi.etl.inbox import sha256_of, stat_of

        size, modified = stat_of(path)
        return cls(path, sha256_of(path), size, modified)


def _import_pipeline() -> None:
    import sdi.etl.merge
    import sdi.etl.pipeline
    import sdi.etl.readers.ogr  # noqa: F401  (pandas, shapely, pyogrio, pyproj, pgpq: slow)


def _import_pipeline_meanwhile() -> threading.Thread | None:
    """For a run that surely loads, the heavy libraries are imported on a thread while the
    sources are hashed: hashlib lets go of the GIL, so both use a core. (A run that may be
    skipped imports nothing it would not use.)"""
    if "sdi.etl.pipeline" in sys.modules:
        return None
    thread = threading.Thread(target=_import_pipeline, name="sdi-import", daemon=True)
    thread.start()
    return thread


class _Rollback(Exception):
    """Raised inside the run's transaction to undo a dry run."""


def _lock_key(job: str) -> int:
    return int.from_bytes(
        hashlib.sha256(f"sdi.etl:{job}".encode()).digest()[:8], "big", signed=True
    )


def _last_sources(conn: psycopg.Connection, job: str) -> tuple[str | None, dict[str, tuple]]:
    """The spec hash and the sources (path → sha256, size) of the job's last successful run."""
    row = conn.execute(
        """
        SELECT r.run_id, r.options->>'spec_sha256' FROM etl.runs r
        WHERE r.job = %s AND r.status = 'succeeded'
          AND coalesce((r.options->>'dry_run')::boolean, false) = false
        ORDER BY r.run_id DESC LIMIT 1
        """,
        (job,),
    ).fetchone()
    if not row:
        return None, {}
    sources = conn.execute(
        "SELECT path, sha256, size_bytes FROM etl.run_sources WHERE run_id = %s", (row[0],)
    ).fetchall()
    return row[1], {path: (sha256, size) for path, sha256, size in sources}


def _finish(conn: psycopg.Connection, run_id: int, result: RunResult) -> None:
    c = result.counts
    runs.finish(
        conn,
        run_id,
        result.status,
        result.message or None,
        rows_read=result.rows_read,
        added=c.added,
        updated=c.updated,
        unchanged=c.unchanged,
        retired=c.retired,
        rejected=result.rejected,
        repaired=result.repaired,
    )


def record_encodings(
    conn: psycopg.Connection, run_id: int, encodings: dict[str, tuple[str, str | None]]
) -> None:
    """The text encoding each file was read with, and the evidence when it was detected."""
    for path, (encoding, _) in encodings.items():
        conn.execute(
            "UPDATE etl.run_sources SET encoding = %s WHERE run_id = %s AND path = %s",
            (encoding, run_id, path),
        )
    if encodings:
        report = {p: {"encoding": e, "evidence": why} for p, (e, why) in encodings.items()}
        conn.execute(
            "UPDATE etl.runs SET options = options || jsonb_build_object('encodings', %s::jsonb) "
            "WHERE run_id = %s",
            (json.dumps(report, ensure_ascii=False), run_id),
        )


def run_job(
    job: JobSpec,
    url: str,
    *,
    force: bool = False,
    dry_run: bool = False,
    settings: Settings | None = None,
    on_start: Callable[[int | None], Callable[[int], None] | None] | None = None,
) -> RunResult:
    """Run one job. ``on_start(total_rows)`` may return a progress callback."""
    settings = settings or get_settings()
    files = job.source_files(settings)
    if job.source.srid is not None:
        from sdi.etl.readers.crs import spec_crs

        spec_crs(job.source.srid)  # an EPSG code PROJ does not know: a ConfigError naming it
    from sdi.db.roles import etl_url

    # As the ETL role (it writes the warehouse and etl.*, reads no API key and alters nothing),
    # not as the owner whose URL the callers hold.
    with psycopg.connect(etl_url(url, settings), autocommit=True) as conn:
        # If this process is killed, the server notices within a second and rolls the run back
        # (instead of finishing the statement and holding the job's lock meanwhile).
        conn.execute("SET client_connection_check_interval = 1000")
        locked = one(conn.execute("SELECT pg_try_advisory_lock(%s)", (_lock_key(job.name),)))
        if not locked[0]:
            raise JobLockedError(
                f"job {job.name} is already running (another `sdi etl run` holds its lock); "
                "wait for it to finish — runs of one job are serialised"
            )
        # We hold the lock, so any run still marked 'running' was killed.
        runs.fail_interrupted(conn, job.name)
        last_spec, last_sources = _last_sources(conn, job.name)
        sizes = {str(p): SourceFile.size(p) for p in files}
        # Only equal sizes and spec can mean "unchanged"; otherwise the run surely loads
        surely_loads = (
            force
            or dry_run
            or last_spec != job.spec_sha256
            or sizes != {path: size for path, (_, size) in last_sources.items()}
        )
        importing = _import_pipeline_meanwhile() if surely_loads else None
        sources = [SourceFile.fingerprint(p) for p in files]
        if importing:
            importing.join()
        options = {"spec_sha256": job.spec_sha256, "force": force, "dry_run": dry_run}
        if not surely_loads and {(str(s.path), s.sha256) for s in sources} == {
            (path, sha256) for path, (sha256, _) in last_sources.items()
        }:
            run_id = runs.skipped(
                conn, job.name, "sources and spec unchanged since the last successful run", options
            )
            return RunResult(
                job.name,
                run_id,
                "skipped",
                message="sources unchanged since the last successful run (use --force to reload)",
            )

        run_id = runs.start(conn, job.name, options)
        with conn.cursor().copy(
            "COPY etl.run_sources (run_id, path, sha256, size_bytes, modified_at, encoding, "
            "source_srid) FROM STDIN"
        ) as copy:
            for s in sources:
                copy.write_row(
                    (
                        run_id,
                        str(s.path),
                        s.sha256,
                        s.size_bytes,
                        s.modified_at,
                        job.source.encoding,
                        job.source.srid,
                    )
                )

        # The heavy libraries load only now that the run is not skipped.
        from sdi.etl.merge import merge
        from sdi.etl.pipeline import JobRun, store_rejects
        from sdi.etl.readers import count_rows
        from sdi.etl.stage import TargetTable

        result = RunResult(job.name, run_id, "running")
        work = None
        try:
            work = JobRun(job, conn, settings)
            total = (
                sum(filter(None, (count_rows(p, job.source, kind=job.kind) for p in files))) or None
            )
            progress = on_start(total) if on_start else None
            with conn.transaction():
                record_crs(conn, run_id, check_crs(job, files))
                target = TargetTable.introspect(conn, job.table)
                stage = work.load(files, target, progress, run_id)
                record_encodings(conn, run_id, work.encodings)
                record_findings(conn, run_id, work)
                result.encoding_report = (
                    "; ".join(
                        f"{Path(p).name}: {enc}" + (f" ({why})" if why else "")
                        for p, (enc, why) in work.encodings.items()
                        if job.source.encoding == "auto"
                    )
                    or None
                )
                work.check_threshold()
                contribution = (
                    (job.contributes_as, load_rule(job.table, settings))
                    if job.contributes_as
                    else None
                )
                result.counts = merge(
                    conn,
                    job.mode,
                    target,
                    stage.columns,
                    run_id,
                    stage.rows,
                    slice_column=job.slice_column,
                    contribution=contribution,
                    direct=stage.direct,
                    provinces=work.provinces.seen if work.provinces else None,
                )
                result.counts.unchanged += work.unchanged
                result.rows_read, result.rejected = work.rows_read, len(work.rejects)
                result.repaired = work.repaired
                if work.dropped_repeats:
                    result.message = (
                        f"{work.dropped_repeats} repeated row(s) dropped: same key and values "
                        "as an earlier row of the delivery"
                    )
                if dry_run:
                    raise _Rollback
                # Derived data (flood warnings, planning and operations layers) follows the
                # load, in the same transaction: the registry is sdi/etl/hooks.py.
                from sdi.etl.hooks import after_load

                c = result.counts
                after_load(
                    conn,
                    job.table,
                    run_id,
                    changed=c.added + c.updated + c.retired > 0,
                    communes=c.communes,
                )
                result.status = "succeeded"
                store_rejects(conn, run_id, work.rejects)
                _finish(conn, run_id, result)
        except _Rollback:
            result.status = "succeeded"
            result.message = "dry run: nothing was written"
            assert work is not None, "a dry run rolls back after the work ran"
            store_rejects(conn, run_id, work.rejects)
            _finish(conn, run_id, result)
        except SdiError as exc:
            _name_the_delivery(exc, job, files)
            result.status = "rejected" if isinstance(exc, RejectThresholdExceeded) else "failed"
            if work is not None:
                result.rows_read, result.rejected = work.rows_read, len(work.rejects)
                store_rejects(conn, run_id, work.rejects)
            result.message = str(exc)
            _finish(conn, run_id, result)
            raise
        except psycopg.Error as exc:
            if conn.closed:  # the connection itself is gone: nothing more to record
                raise WarehouseRefused(f"job {job.name}: lost the database: {exc}") from None
            result.status = "failed"
            result.message = _describe_database_error(job, exc)
            _finish(conn, run_id, result)
            raise WarehouseRefused(result.message) from None
        except Exception as exc:
            # A failure nobody foresaw: the run is closed and the person told, in words, with
            # the traceback kept in a log for whoever fixes the code — never shown as one.
            log = _log_traceback(settings, job, run_id)
            result.status = "failed"
            result.message = (
                f"job {job.name}: unexpected error while loading {', '.join(p.name for p in files)}"
                f" ({type(exc).__name__}: {exc}); nothing was written. Details: {log}"
            )
            _finish(conn, run_id, result)
            raise SourceError(result.message) from None
        except BaseException:
            # Ctrl-C or a signal: the transaction is rolled back; close the run record too.
            if not conn.closed:
                result.status = "failed"
                result.message = "interrupted: the run was stopped; nothing was written"
                with contextlib.suppress(psycopg.Error):
                    _finish(conn, run_id, result)
            raise
        return result


def _name_the_delivery(exc: SdiError, job: JobSpec, files: list[Path]) -> None:
    """Make sure the message says which spec and files it is about."""
    message = str(exc)
    if job.path.name in message or any(p.name in message for p in files):
        return
    names = ", ".join(p.name for p in files)
    exc.args = (f"job {job.name} ({job.path.name}, delivery {names}): {message}",)


def _log_traceback(settings: Settings, job: JobSpec, run_id: int) -> Path:
    """Write the current exception's traceback to the state folder's log; its path."""
    log = settings.state_dir / "logs" / f"etl-run-{run_id}.log"
    with contextlib.suppress(OSError):
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"job {job.name} ({job.path}), run {run_id}\n{traceback.format_exc()}")
    return log


def check_crs(job: JobSpec, files: list[Path]) -> list:
    """Each file's own CRS against ``source.srid`` (vector jobs with a srid; see
    ``sdi/etl/readers/crs.py``): a mismatch without ``srid_override`` raises SourceError."""
    if job.kind != "vector" or job.source.srid is None:
        return []
    from sdi.etl.readers import crs

    crs.spec_crs(job.source.srid)  # an unknown code is a ConfigError naming it
    if job.source.x or job.source.wkt or job.source.path.lower().endswith((".csv", ".txt")):
        return []  # delimited text carries no CRS of its own
    return [
        crs.check(p, job.source.layer, job.source.srid, job.source.srid_override) for p in files
    ]


def record_crs(conn: psycopg.Connection, run_id: int, checks: list) -> None:
    """What each file said about its CRS, and an accepted override, in the run's options."""
    if not checks:
        return
    report = {c.path: c.as_json() for c in checks}
    conn.execute(
        "UPDATE etl.runs SET options = options || jsonb_build_object('crs', %s::jsonb) "
        "WHERE run_id = %s",
        (json.dumps(report, ensure_ascii=False), run_id),
    )


REPORTED_MAX = 1000  # repaired rows and warnings kept in a run's record


def record_findings(conn: psycopg.Connection, run_id: int, work: object) -> None:
    """Repaired geometries and gazetteer warnings of the run, for its report."""
    findings = {
        "repairs": getattr(work, "repairs", [])[:REPORTED_MAX],
        "warnings": getattr(work, "warnings", [])[:REPORTED_MAX],
    }
    if not any(findings.values()):
        return
    conn.execute(
        "UPDATE etl.runs SET options = options || %s::jsonb WHERE run_id = %s",
        (json.dumps(findings, ensure_ascii=False, default=str), run_id),
    )


def _describe_database_error(job: JobSpec, exc: psycopg.Error) -> str:
    """What the database refused, where, in words an analyst can act on."""
    diag = exc.diag
    where = ", ".join(
        f"{label} {value}"
        for label, value in (
            ("table", diag.table_name),
            ("column", diag.column_name),
            ("constraint", diag.constraint_name),
        )
        if value
    )
    detail = f" ({diag.message_detail})" if diag.message_detail else ""
    return (
        f"job {job.name}: the warehouse refused the delivery: {diag.message_primary or exc}"
        f"{detail}{' — ' + where if where else ''}; nothing was written. Fix the delivery or "
        f"the field mapping in {job.path.name}"
    )
