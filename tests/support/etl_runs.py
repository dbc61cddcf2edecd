"""Helpers for the ETL atomicity and operations tests: deliveries, `sdi etl run` subprocesses,
phase detection from the database's own views, kills, and fingerprints of tables.

Nothing here hooks into the product: a run's phase is read from ``etl.runs``,
``pg_stat_activity`` and ``pg_locks`` the way an operator would, and processes are killed
with real signals.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pandas as pd
import psycopg
import shapely
from psycopg import sql

from sdi.settings import PROJECT_DIR, Settings

POLL = 0.005  # seconds between polls of the database while waiting for a phase

# Query texts of the phases of a history run (see sdi/etl/stage.py and sdi/etl/merge.py).
COPY_STAGE = 'COPY "sdi_stage"%'
MERGE_CLOSE = "%WITH closed AS%"
MERGE_ADD = '%INSERT INTO "land"."parcels"%NOT EXISTS%'
MERGE_RETIRE = '%UPDATE "land"."parcels" t SET valid_to = now()%NOT EXISTS%'
STORE_REJECTS = "COPY etl.rejects%"  # after the merge, before the final record update
FINISH = "%UPDATE etl.runs SET status = $1, finished_at%"  # last before COMMIT


# -- deliveries --------------------------------------------------------------------------------


def parcel_table(scale: float, seed: int = 2025) -> pd.DataFrame:
    """The land office's parcels of the four cities as the sample generator makes them."""
    from sdi.samples import CITIES, generate_parcels, load_communes

    communes = load_communes()
    frames = []
    for city in CITIES:
        parcels = generate_parcels(communes, city, scale=scale, seed=seed)
        frames.append(parcels.table.assign(geometry=parcels.geometry))
    table = pd.concat(frames, ignore_index=True)
    table["key"] = (
        table["MAXA"] + "-" + table["SOTO"].astype(str) + "-" + table["SOTHUA"].astype(str)
    )
    return table


def write_parcels(
    folder: Path,
    table: pd.DataFrame,
    *,
    stem: str = "parcels",
    fields: dict[str, str] | None = None,
) -> list[Path]:
    """Write ``table`` as the land office does: one TCVN3 shapefile per city in folder/land."""
    from sdi.samples import PARCEL_FIELDS
    from sdi.samples.common import CADASTRAL_EPSG
    from sdi.samples.writers import write_shapefile_tcvn3

    (folder / "land").mkdir(parents=True, exist_ok=True)
    paths = []
    for city, rows in table.groupby("city", sort=False):
        path = folder / "land" / f"{stem}_{city}.shp"
        write_shapefile_tcvn3(rows, path, fields=fields or PARCEL_FIELDS, epsg=CADASTRAL_EPSG)
        paths.append(path)
    return paths


def modify(table: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """A copy where ``rows`` (positions) changed: the declared area of all of them, and the
    geometry (moved 0.5 m east) of every other one."""
    out = table.copy()
    position = np.zeros(len(out), dtype=bool)
    position[rows] = True
    out.loc[position, "DIENTICH"] = out.loc[position, "DIENTICH"] + 1.0
    moved = np.zeros(len(out), dtype=bool)
    moved[rows[::2]] = True
    geometry = out["geometry"].to_numpy().copy()
    geometry[moved] = shapely.transform(geometry[moved], lambda xy: xy + np.array([0.5, 0.0]))
    out["geometry"] = geometry
    return out


@dataclass(frozen=True)
class Change:
    """What a delivery does to the warehouse when it follows another one."""

    staged: int
    added: int
    updated: int
    retired: int

    @property
    def unchanged(self) -> int:
        return self.staged - self.added - self.updated


# -- the CLI as a subprocess ---------------------------------------------------------------


def sdi_env(
    url: str,
    source_dir: Path,
    state_dir: Path,
    jobs_dir: Path | None = None,
    **extra: str,
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SDI_")}
    env.update(
        SDI_DATABASE_URL=url,
        SDI_SOURCE_DIR=str(source_dir),
        SDI_STATE_DIR=str(state_dir),
        PYTHONUNBUFFERED="1",
        COLUMNS="200",
    )
    if jobs_dir is not None:
        env["SDI_JOBS_DIR"] = str(jobs_dir)
    env.update(extra)
    return env


def sdi_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "sdi", *args]


def start(env: dict[str, str], *args: str) -> subprocess.Popen:
    """Start ``sdi ARGS`` in the background (its own process group, output captured)."""
    return subprocess.Popen(
        sdi_command(*args),
        env=env,
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def sdi(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``sdi ARGS`` to the end; exit code, stdout and stderr are returned."""
    return subprocess.run(
        sdi_command(*args),
        env=env,
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_no_traceback(process: subprocess.CompletedProcess | tuple[str, str]) -> None:
    stderr = process[1] if isinstance(process, tuple) else process.stderr
    assert "Traceback" not in stderr, f"the CLI printed a traceback:\n{stderr}"


# -- what the database says ----------------------------------------------------------------


def table_state(conn: psycopg.Connection, table: str, order: str = "version_id") -> tuple:
    """Rows, current rows and the md5 of every row in order: equal states, equal tuples."""
    has_history = conn.execute(
        "SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass(%s) "
        "AND attname = 'valid_to' AND NOT attisdropped",
        (table,),
    ).fetchone()[0]
    current = sql.SQL("valid_to IS NULL" if has_history else "TRUE")
    return conn.execute(
        sql.SQL(
            "SELECT count(*), count(*) FILTER (WHERE {current}), "
            "md5(string_agg(t::text, '|' ORDER BY {order})) FROM {table} t"
        ).format(
            current=current,
            order=sql.SQL(order),
            table=sql.Identifier(*table.split(".")),
        )
    ).fetchone()


def row_writes(conn: psycopg.Connection, table: str) -> int:
    """Rows ever inserted, updated or deleted in ``table`` by any transaction, rolled back or
    not (the statistics collector's counters): the proof that a run wrote before it died.
    A partitioned table has no counters of its own: those of its partitions are summed."""
    return conn.execute(
        "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint "
        "FROM pg_stat_user_tables s JOIN pg_partition_tree(%s::regclass) p ON p.relid = s.relid",
        (table,),
    ).fetchone()[0]


def wait_row_writes(conn: psycopg.Connection, table: str, at_least: int, timeout=5.0) -> int:
    """Wait for the counters of an ended backend to be flushed; returns the last value."""
    deadline = time.monotonic() + timeout
    while (value := row_writes(conn, table)) < at_least and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def rejects_state(conn: psycopg.Connection) -> tuple:
    return conn.execute(
        "SELECT count(*), md5(string_agg(r::text, '|' ORDER BY run_id, source_path, row_number)) "
        "FROM etl.rejects r"
    ).fetchone()


def last_run_id(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT coalesce(max(run_id), 0) FROM etl.runs").fetchone()[0]


def run_record(conn: psycopg.Connection, run_id: int) -> dict:
    cursor = conn.execute(
        "SELECT run_id, job, status, rows_read, added, updated, unchanged, retired, rejected, "
        "repaired, message, options FROM etl.runs WHERE run_id = %s",
        (run_id,),
    )
    row = cursor.fetchone()
    assert row is not None, f"run {run_id} is not in etl.runs"
    return dict(zip([c.name for c in cursor.description], row, strict=True))


def job_lock_key(job: str) -> int:
    from sdi.etl.runner import _lock_key

    return _lock_key(job)


def lock_holder(conn: psycopg.Connection, job: str) -> int | None:
    """The backend pid holding the advisory lock of ``job`` (a run of it is in progress)."""
    key = job_lock_key(job) & 0xFFFFFFFFFFFFFFFF
    row = conn.execute(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND classid = %s AND objid = %s AND objsubid = 1",
        (key >> 32, key & 0xFFFFFFFF),
    ).fetchone()
    return row[0] if row else None


def backend(conn: psycopg.Connection, pid: int) -> tuple | None:
    """(state, wait_event_type, query) of a backend, or None once it has ended."""
    return conn.execute(
        "SELECT state, wait_event_type, query FROM pg_stat_activity WHERE pid = %s", (pid,)
    ).fetchone()


def backend_in(conn: psycopg.Connection, pid: int, pattern: str, *, active: bool = True) -> bool:
    row = conn.execute(
        "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND query LIKE %s "
        "AND (NOT %s OR state = 'active')",
        (pid, pattern, active),
    ).fetchone()
    return row is not None


def temp_tables(conn: psycopg.Connection, name: str = "sdi_stage") -> int:
    """Temporary tables called ``name`` in the whole database (any session's)."""
    return conn.execute(
        "SELECT count(*) FROM pg_class WHERE relpersistence = 't' AND relname = %s", (name,)
    ).fetchone()[0]


class PhaseMissed(AssertionError):
    """The run ended or went past a phase before the test saw it."""


def wait_for(
    what: str,
    condition: Callable[[], object],
    process: subprocess.Popen | None = None,
    *,
    timeout: float = 30,
    past: Callable[[], bool] | None = None,
) -> object:
    """Poll ``condition`` every few milliseconds until it returns something truthy.

    Fails if ``process`` exits first or ``past()`` says a later phase began (the phase was
    too quick to see: make the delivery bigger rather than loosen the test).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            out, err = process.communicate()
            raise PhaseMissed(
                f"the run ended (exit {process.returncode}) before {what}:\n{out}\n{err}"
            )
        if past is not None and past():
            raise PhaseMissed(f"the run went past {what} before it was seen")
        if time.monotonic() > deadline:
            raise PhaseMissed(f"timed out after {timeout} s waiting for {what}")
        time.sleep(POLL)


def sigkill(process: subprocess.Popen) -> tuple[str, str]:
    """SIGKILL the process (and anything it started); returns its stdout and stderr."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    out, err = process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL, (process.returncode, err)
    return out, err


def wait_backend_gone(conn: psycopg.Connection, pid: int, timeout: float = 30) -> bool:
    """Wait until the server notices its client is gone and ends the backend.

    Returns True when the backend ended by itself; after ``timeout`` it is terminated (and
    False is returned) so that the test can go on.
    """
    deadline = time.monotonic() + timeout
    while backend(conn, pid) is not None:
        if time.monotonic() > deadline:
            conn.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))
            return False
        time.sleep(POLL)
    return True


# -- databases -----------------------------------------------------------------------------


@contextlib.contextmanager
def scratch_database(url: str, settings: Settings, prefix: str) -> Iterator[str]:
    """A new, migrated warehouse of its own on the test server; dropped afterwards.

    Tests that change a target table's content use it so that the session's shared test
    database (which other tests check against the sample deliveries) is left alone. Needs
    CREATEDB and the right to create PostGIS (the local cluster's owner has both).
    """
    import pytest

    from sdi.db.migrate import upgrade

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    scratch = urlunsplit(urlsplit(url)._replace(path="/" + name))
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.Error as exc:
            pytest.skip(f"cannot create a scratch database on the test server: {exc}")
    try:
        with psycopg.connect(scratch, autocommit=True) as conn:
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            except psycopg.Error as exc:
                pytest.skip(f"cannot create PostGIS in a scratch database: {exc}")
        upgrade(scratch, settings)
        yield scratch
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
