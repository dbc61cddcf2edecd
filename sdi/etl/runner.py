"""Run an ETL job: read → normalise → validate → stage → merge, all or nothing.

The run is recorded in ``etl.runs`` before any data moves (so a killed run is visible as
interrupted), and everything that touches the warehouse happens in one transaction: a crash,
a kill or a bad file leaves every target table exactly as it was.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import shapely
from psycopg.types.json import Jsonb

from sdi.errors import JobLockedError, RejectThresholdExceeded, SdiError
from sdi.etl import raster
from sdi.etl.merge import MergeCounts, merge
from sdi.etl.normalise import Issues, Reprojector, map_fields
from sdi.etl.read import Batch, count_rows, read_batches
from sdi.etl.rules import load_rule
from sdi.etl.spec import JobSpec
from sdi.etl.stage import Stage, TargetTable
from sdi.etl.validate import FirstSeen, check_bounds, check_geometry
from sdi.settings import Settings, get_settings

# Sidecar files that belong to a delivered file and change its meaning.
_SIDECARS = (".dbf", ".shx", ".prj", ".cpg", ".dat", ".id", ".map")

Progress = Callable[[int], None]


@dataclass
class SourceFile:
    path: Path
    sha256: str
    size_bytes: int
    modified_at: datetime

    @classmethod
    def fingerprint(cls, path: Path) -> SourceFile:
        digest = hashlib.sha256()
        size = 0
        for part in [path, *(path.with_suffix(s) for s in _SIDECARS)]:
            if part.exists():
                with part.open("rb") as handle:
                    while chunk := handle.read(1 << 20):
                        digest.update(chunk)
                size += part.stat().st_size
        modified = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
        return cls(path, digest.hexdigest(), size, modified)


@dataclass
class RunResult:
    job: str
    run_id: int | None
    status: str
    rows_read: int = 0
    rejected: int = 0
    repaired: int = 0
    counts: MergeCounts = field(default_factory=MergeCounts)
    message: str = ""

    @property
    def changes(self) -> int:
        return self.counts.added + self.counts.updated + self.counts.retired


@dataclass
class Reject:
    path: str
    row_number: int
    natural_key: str | None
    reason: str
    raw: dict[str, Any]


class _Rollback(Exception):
    """Raised inside the run's transaction to undo a dry run."""


def _derive(job: JobSpec, frame: pd.DataFrame, province_geometry: np.ndarray) -> None:
    for spec in job.fields:
        if spec.derive == "area":
            frame[spec.name] = np.round(shapely.area(province_geometry), 2)
        elif spec.derive == "length":
            frame[spec.name] = np.round(shapely.length(province_geometry), 2)


class JobRun:
    """One execution of one job against one database connection."""

    def __init__(self, job: JobSpec, conn: psycopg.Connection, settings: Settings) -> None:
        self.job = job
        self.conn = conn
        self.settings = settings
        self.rejects: list[Reject] = []
        self.rows_read = 0
        self.repaired = 0
        self.duplicate_keys = FirstSeen("natural key")
        self.duplicate_geometries = FirstSeen("geometry") if job.unique_geometry else None
        # Raster footprints arrive in the storage CRS (each raster has its own CRS).
        self.reprojector = Reprojector(
            job.source.srid or settings.storage_srid, settings.storage_srid, settings.province_srid
        )

    # -- one batch -----------------------------------------------------------------------
    def normalise(self, batch: Batch, target: TargetTable) -> pd.DataFrame:
        issues = Issues(len(batch.frame))
        frame = map_fields(batch, self.job, issues)
        if target.geometry_type:
            geometry = batch.geometry
            if geometry is None:
                geometry = np.full(len(frame), None, dtype=object)
            geometry, repaired = check_geometry(geometry, target.geometry_type, issues)
            self.repaired += repaired
            stored = self.reprojector.to_storage(geometry)
            province = self.reprojector.to_province(geometry)
            check_bounds(stored, self.job.bounds, issues)
            _derive(self.job, frame, province)
            frame["geom"] = shapely.to_wkb(
                shapely.set_srid(stored, self.settings.storage_srid), hex=True, include_srid=True
            )
        rows = np.arange(batch.first_row, batch.first_row + len(frame))
        if "natural_key" in frame:
            self.duplicate_keys.check(frame["natural_key"], rows, batch.path.name, issues)
        if self.duplicate_geometries and "geom" in frame:
            self.duplicate_geometries.check(frame["geom"], rows, batch.path.name, issues)
        self._keep_rejects(batch, frame, rows, issues)
        return frame[issues.ok]

    def _keep_rejects(
        self, batch: Batch, frame: pd.DataFrame, rows: np.ndarray, issues: Issues
    ) -> None:
        bad = np.flatnonzero(~issues.ok)
        if not bad.size:
            return
        raw = batch.frame.iloc[bad].astype(object).where(batch.frame.iloc[bad].notna(), None)
        if batch.geometry is not None:
            raw["geometry_wkt"] = [
                None if g is None else shapely.to_wkt(g, rounding_precision=3)[:2000]
                for g in batch.geometry[bad]
            ]
        keys = frame["natural_key"].iloc[bad] if "natural_key" in frame else [None] * bad.size
        for record, row, key, reason in zip(
            raw.to_dict("records"), rows[bad], keys, issues.reasons[bad], strict=True
        ):
            self.rejects.append(Reject(str(batch.path), int(row), key, reason, record))

    # -- whole run -----------------------------------------------------------------------
    def load(self, files: list[Path], target: TargetTable, progress: Progress | None) -> Stage:
        columns = [c for c in ("natural_key",) if c in target.columns and self.job.natural_key]
        columns += [f.name for f in self.job.fields]
        if target.geometry_type:
            columns.append("geom")
        stage = Stage(self.conn, target, columns)
        for path in files:
            batches = (
                raster.read_raster(path, self.job, self.settings)
                if self.job.kind == "raster"
                else read_batches(path, self.job.source)
            )
            for batch in batches:
                self.rows_read += len(batch.frame)
                stage.write(self.normalise(batch, target))
                if progress:
                    progress(len(batch.frame))
        stage.finish()
        return stage

    def check_threshold(self) -> None:
        if not self.rows_read:
            raise RejectThresholdExceeded(f"job {self.job.name}: the delivery has no rows")
        ratio = len(self.rejects) / self.rows_read
        if ratio > self.job.max_reject_ratio:
            # group reasons by their wording, without the values they quote
            reasons = (
                pd.Series([r.reason for r in self.rejects])
                .str.replace(r"'[^']*'|\([^)]*\)", "…", regex=True)
                .value_counts()
                .head(3)
            )
            summary = "; ".join(f"{n} × {reason}" for reason, n in reasons.items())
            raise RejectThresholdExceeded(
                f"job {self.job.name}: {len(self.rejects)} of {self.rows_read} rows rejected "
                f"({ratio:.1%} > the job's limit {self.job.max_reject_ratio:.1%}); nothing was "
                f"written. Most common: {summary}"
            )


def _lock_key(job: str) -> int:
    return int.from_bytes(
        hashlib.sha256(f"sdi.etl:{job}".encode()).digest()[:8], "big", signed=True
    )


def _last_fingerprint(conn: psycopg.Connection, job: str) -> tuple[str | None, set]:
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
        return None, set()
    sources = conn.execute(
        "SELECT path, sha256 FROM etl.run_sources WHERE run_id = %s", (row[0],)
    ).fetchall()
    return row[1], {(p, s) for p, s in sources}


def _json_value(value: Any) -> Any:
    """JSON has no NaN: missing values read by pandas become null."""
    if isinstance(value, float) and value != value:
        return None
    return value


def _store_rejects(conn: psycopg.Connection, run_id: int, rejects: list[Reject]) -> None:
    with conn.cursor().copy(
        "COPY etl.rejects (run_id, source_path, row_number, natural_key, reason, raw) FROM STDIN"
    ) as copy:
        for r in rejects:
            copy.write_row(
                (
                    run_id,
                    r.path,
                    r.row_number,
                    r.natural_key,
                    r.reason,
                    json.dumps(
                        {k: _json_value(v) for k, v in r.raw.items()},
                        default=str,
                        ensure_ascii=False,
                    ),
                )
            )


def _finish(conn: psycopg.Connection, run_id: int, result: RunResult) -> None:
    c = result.counts
    conn.execute(
        """
        UPDATE etl.runs SET status = %s, finished_at = clock_timestamp(), rows_read = %s,
            added = %s, updated = %s, unchanged = %s, retired = %s, rejected = %s,
            repaired = %s, message = %s
        WHERE run_id = %s
        """,
        (
            result.status,
            result.rows_read,
            c.added,
            c.updated,
            c.unchanged,
            c.retired,
            result.rejected,
            result.repaired,
            result.message or None,
            run_id,
        ),
    )


def run_job(
    job: JobSpec,
    url: str,
    *,
    force: bool = False,
    dry_run: bool = False,
    settings: Settings | None = None,
    on_start: Callable[[int | None], Progress | None] | None = None,
) -> RunResult:
    """Run one job. ``on_start(total_rows)`` may return a progress callback."""
    settings = settings or get_settings()
    files = job.source_files(settings)
    sources = [SourceFile.fingerprint(p) for p in files]
    with psycopg.connect(url, autocommit=True) as conn:
        locked = conn.execute("SELECT pg_try_advisory_lock(%s)", (_lock_key(job.name),)).fetchone()
        if not locked[0]:
            raise JobLockedError(
                f"job {job.name} is already running (another `sdi etl run` holds its lock); "
                "wait for it to finish — runs of one job are serialised"
            )
        # We hold the lock, so any run still marked 'running' was killed.
        conn.execute(
            "UPDATE etl.runs SET status = 'failed', finished_at = clock_timestamp(), "
            "message = 'interrupted: the process stopped before the run finished; "
            "nothing was written' WHERE job = %s AND status = 'running'",
            (job.name,),
        )
        fingerprint = {(str(s.path), s.sha256) for s in sources}
        options = {"spec_sha256": job.spec_sha256, "force": force, "dry_run": dry_run}
        if (
            not force
            and not dry_run
            and _last_fingerprint(conn, job.name) == (job.spec_sha256, fingerprint)
        ):
            run_id = conn.execute(
                "INSERT INTO etl.runs (job, status, finished_at, message, options) "
                "VALUES (%s, 'skipped', clock_timestamp(), %s, %s) RETURNING run_id",
                (
                    job.name,
                    "sources and spec unchanged since the last successful run",
                    Jsonb(options),
                ),
            ).fetchone()[0]
            return RunResult(
                job.name,
                run_id,
                "skipped",
                message="sources unchanged since the last successful run (use --force to reload)",
            )

        run_id = conn.execute(
            "INSERT INTO etl.runs (job, status, options) VALUES (%s, 'running', %s) "
            "RETURNING run_id",
            (job.name, Jsonb(options)),
        ).fetchone()[0]
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

        work = JobRun(job, conn, settings)
        result = RunResult(job.name, run_id, "running")
        total = sum(filter(None, (count_rows(p, job.source) for p in files))) or None
        progress = on_start(total) if on_start else None
        try:
            with conn.transaction():
                target = TargetTable.introspect(conn, job.table)
                stage = work.load(files, target, progress)
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
                )
                result.rows_read, result.rejected = work.rows_read, len(work.rejects)
                result.repaired = work.repaired
                if dry_run:
                    raise _Rollback
                result.status = "succeeded"
                _store_rejects(conn, run_id, work.rejects)
                _finish(conn, run_id, result)
        except _Rollback:
            result.status = "succeeded"
            result.message = "dry run: nothing was written"
            _store_rejects(conn, run_id, work.rejects)
            _finish(conn, run_id, result)
        except SdiError as exc:
            result.status = "rejected" if isinstance(exc, RejectThresholdExceeded) else "failed"
            result.rows_read, result.rejected = work.rows_read, len(work.rejects)
            result.message = str(exc)
            _store_rejects(conn, run_id, work.rejects)
            _finish(conn, run_id, result)
            raise
        except Exception as exc:
            result.status = "failed"
            result.message = f"{type(exc).__name__}: {exc}"
            _finish(conn, run_id, result)
            raise
        return result
