"""A run is all or nothing: SIGKILL at any phase, or a database error midway, leaves every
target table exactly as it was (issue "ETL refresh jobs that analysts can trust", item 4).

The job runs as a real `sdi etl run` subprocess against a warehouse of its own (a scratch
database, so the shared test database keeps the sample deliveries other tests check). Its
phases are observed from the database the way an operator would see them (``etl.runs``,
``pg_stat_activity``, ``pg_locks``); nothing in the product is hooked. Two deliveries of the
land office's parcels at scale 3 (72,000 parcels) alternate, each one adding, updating
(attributes and geometry) and retiring parcels with respect to the other, so every run has
real work to do and every recovery run has exact counts to check.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
import pytest
import yaml

from sdi.errors import WarehouseRefused
from sdi.samples import PARCEL_FIELDS
from tests.support.etl_runs import (
    COPY_STAGE,
    FINISH,
    MERGE_ADD,
    MERGE_CLOSE,
    MERGE_RETIRE,
    STORE_REJECTS,
    Change,
    assert_no_traceback,
    backend,
    backend_in,
    last_run_id,
    lock_holder,
    modify,
    parcel_table,
    rejects_state,
    row_writes,
    run_record,
    scratch_database,
    sdi,
    sdi_env,
    sigkill,
    start,
    table_state,
    temp_tables,
    wait_backend_gone,
    wait_for,
    wait_row_writes,
    write_parcels,
)

JOB = "land_parcels"
TABLE = "land.parcels"
SCALE = 3  # 72,000 parcels: a COPY long enough to catch on a busy 2-core host (2 missed once)
ADDED, RETIRED, UPDATED = 1000, 1500, 2000

# Statements of the merge that run after its first one (``WITH closed AS …``) has written.
AFTER_CLOSE = (MERGE_ADD, MERGE_RETIRE)
PAST_COPY = ('CREATE INDEX ON "sdi_stage"%', 'ANALYZE "sdi_stage"%', "%LOCK TABLE%")
PAST_MERGE = (STORE_REJECTS, FINISH, "COMMIT")


@dataclass
class Warehouse:
    """The scratch warehouse, the two deliveries and which one the table holds."""

    url: str
    conn: psycopg.Connection
    root: Path
    folders: dict[str, Path]
    keys: dict[str, str]  # delivery → md5 of its sorted natural keys
    changes: dict[str, Change]  # delivery → what it does when it follows the other one
    table: object  # the full parcel table (pandas) the deliveries were cut from
    rows: dict[str, np.ndarray]  # delivery → positions of its rows in ``table``
    edited: np.ndarray  # positions of the parcels that differ between the two deliveries
    current: str | None = None

    def env(self, folder: Path | str, **extra: str) -> dict[str, str]:
        folder = self.folders.get(folder, folder) if isinstance(folder, str) else folder
        return sdi_env(self.url, Path(folder), self.root / "state", **extra)

    @property
    def other(self) -> str:
        return "changed" if self.current == "base" else "base"

    def state(self) -> tuple:
        return table_state(self.conn, TABLE), rejects_state(self.conn)

    def current_keys(self) -> str:
        return self.conn.execute(
            "SELECT md5(string_agg(natural_key, ',' ORDER BY natural_key COLLATE \"C\")) "
            "FROM land.parcels_current"
        ).fetchone()[0]


def _key_digest(keys) -> str:
    return hashlib.md5(",".join(sorted(keys)).encode()).hexdigest()


@pytest.fixture(scope="module")
def warehouse(migrated: str, settings, tmp_path_factory) -> Iterator[Warehouse]:
    root = tmp_path_factory.mktemp("atomicity")
    full = parcel_table(SCALE)
    n = len(full)
    order = np.random.default_rng(4).permutation(n)
    only_changed = order[:ADDED]  # in "changed" only
    only_base = order[ADDED : ADDED + RETIRED]  # in "base" only
    edited = order[ADDED + RETIRED : ADDED + RETIRED + UPDATED]  # different in the two
    in_base = np.setdiff1d(np.arange(n), only_changed)
    in_changed = np.setdiff1d(np.arange(n), only_base)
    folders = {"base": root / "base", "changed": root / "changed"}
    write_parcels(folders["base"], full.iloc[in_base])
    write_parcels(folders["changed"], modify(full, edited).iloc[in_changed])
    with (
        scratch_database(migrated, settings, "sdi_test_atomicity") as url,
        psycopg.connect(url, autocommit=True) as conn,
    ):
        w = Warehouse(
            url=url,
            conn=conn,
            root=root,
            folders=folders,
            keys={
                "base": _key_digest(full["key"].iloc[in_base]),
                "changed": _key_digest(full["key"].iloc[in_changed]),
            },
            changes={
                "changed": Change(len(in_changed), ADDED, UPDATED, RETIRED),
                "base": Change(len(in_base), RETIRED, UPDATED, ADDED),
            },
            table=full,
            rows={"base": in_base, "changed": in_changed},
            edited=edited,
        )
        _load(w, "base", Change(len(in_base), len(in_base), 0, 0))
        yield w


def _load(w: Warehouse, delivery: str, expected: Change | None = None) -> int:
    """Run the job on ``delivery`` to the end; check it and return its run id."""
    done = sdi(w.env(delivery), "etl", "run", JOB, "--force")
    assert done.returncode == 0, done.stderr
    assert_no_traceback(done)
    run_id = last_run_id(w.conn)
    record = run_record(w.conn, run_id)
    assert record["status"] == "succeeded", record
    if expected is not None:
        got = Change(
            record["rows_read"] - record["rejected"],
            record["added"],
            record["updated"],
            record["retired"],
        )
        assert (got, record["rejected"]) == (expected, 0), record
        assert record["unchanged"] == expected.unchanged
    assert w.current_keys() == w.keys[delivery]
    w.current = delivery
    return run_id


@pytest.fixture()
def ready(warehouse: Warehouse) -> Warehouse:
    """The warehouse holding one of the two deliveries, with no run in progress."""
    w = warehouse
    pid = lock_holder(w.conn, JOB)
    if pid is not None:  # left by a test that failed half-way
        w.conn.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))
    if w.current is None:
        _load(w, "base")
    return w


def _assert_untouched(w: Warehouse, before: tuple, pid: int) -> None:
    assert backend(w.conn, pid) is None
    assert lock_holder(w.conn, JOB) is None, "the job's advisory lock outlived its backend"
    assert temp_tables(w.conn) == 0, "a staging table outlived its run"
    assert w.state() == before, "the target table or etl.rejects changed"


# -- SIGKILL ---------------------------------------------------------------------------------

POINTS = ["run-recorded", "copy", "merge", "merge-after-close", "before-commit"]


@pytest.mark.parametrize("point", POINTS)
def test_sigkill_leaves_every_table_as_it_was(point: str, ready: Warehouse) -> None:
    """Kill `sdi etl run` with SIGKILL at one phase of a run that changes thousands of rows.

    - run-recorded: as soon as its run record appears in etl.runs ('running');
    - copy: while a COPY into the staging table is in flight;
    - merge: while the first merge statement (close changed versions, insert new ones) runs;
    - merge-after-close: while a later merge statement (add, retire) runs — the first one
      has already written inside the run's transaction;
    - before-commit: everything merged inside the transaction, the COMMIT not yet sent (the
      run waits for the test's lock on etl.rejects to store its rejects, its last write
      before the final update of its run record and the COMMIT).
    """
    w = ready
    target, before = w.other, w.state()
    since, writes = last_run_id(w.conn), row_writes(w.conn, TABLE)
    process = start(w.env(target), "etl", "run", JOB, "--force")
    holder: psycopg.Connection | None = None
    try:
        pid = wait_for("the job's lock", lambda: lock_holder(w.conn, JOB), process)
        (run_id,) = wait_for(
            "the run record",
            lambda: w.conn.execute(
                "SELECT run_id FROM etl.runs WHERE run_id > %s AND job = %s AND status = 'running'",
                (since, JOB),
            ).fetchone(),
            process,
        )
        if point == "copy":
            wait_for(
                "a COPY into the staging table",
                lambda: backend_in(w.conn, pid, COPY_STAGE),
                process,
                past=lambda: any(backend_in(w.conn, pid, p, active=False) for p in PAST_COPY),
            )
        elif point == "merge":
            wait_for(
                "the first merge statement",
                lambda: backend_in(w.conn, pid, MERGE_CLOSE),
                process,
                past=lambda: any(
                    backend_in(w.conn, pid, p, active=False) for p in AFTER_CLOSE + PAST_MERGE
                ),
            )
        elif point == "merge-after-close":
            wait_for(
                "a merge statement after the first",
                lambda: any(backend_in(w.conn, pid, p) for p in AFTER_CLOSE),
                process,
                past=lambda: any(backend_in(w.conn, pid, p, active=False) for p in PAST_MERGE),
            )
        elif point == "before-commit":
            # The test locks etl.rejects (SHARE: no row can be added) before the run gets
            # there: the run merges everything, then waits to store its rejects, the last
            # write before its final record update and COMMIT.
            holder = psycopg.connect(w.url)
            holder.execute("LOCK TABLE etl.rejects IN SHARE MODE")
            _, _, query = wait_for(
                "the run to wait for the test's lock",
                lambda: (row := backend(w.conn, pid)) is not None and row[1] == "Lock" and row,
                process,
            )
            assert backend_in(w.conn, pid, STORE_REJECTS), f"the run waits elsewhere: {query}"
        sigkill(process)
    finally:
        if process.poll() is None:
            sigkill(process)
        if holder is not None:
            holder.rollback()  # the job's backend may now go on: it must still not commit
            holder.close()

    assert wait_backend_gone(w.conn, pid), "the server did not end the killed run's backend"
    _assert_untouched(w, before, pid)
    assert run_record(w.conn, run_id)["status"] == "running"  # until the next run looks
    # What the killed run had written inside its transaction (and was rolled back).
    change = w.changes[target]
    written = {
        "merge-after-close": 2 * change.updated,  # closed versions + their new versions
        "before-commit": 2 * change.updated + change.added + change.retired,
    }.get(point, 0)
    assert wait_row_writes(w.conn, TABLE, writes + written) - writes >= written

    # The next run finds the killed one, marks it, and does the whole job.
    recovered = _load(w, target, w.changes[target])
    assert recovered > run_id
    killed = run_record(w.conn, run_id)
    assert killed["status"] == "failed"
    assert killed["message"].startswith("interrupted"), killed["message"]


# -- a database error midway ----------------------------------------------------------------


def _run_into_error(
    w: Warehouse, env: dict[str, str], job: str, needle: str, written: int = 0
) -> None:
    """Run ``job`` expecting a database error naming ``needle``; nothing may change (though
    at least ``written`` rows were written, then rolled back)."""
    before, since = w.state(), last_run_id(w.conn)
    writes = row_writes(w.conn, TABLE)
    done = sdi(env, "etl", "run", job, "--force")
    assert_no_traceback(done)
    assert done.returncode == WarehouseRefused.exit_code, done.stderr
    assert "nothing was written" in done.stderr
    assert needle in done.stderr, done.stderr
    runs = w.conn.execute(
        "SELECT run_id FROM etl.runs WHERE run_id > %s ORDER BY run_id", (since,)
    ).fetchall()
    assert len(runs) == 1
    record = run_record(w.conn, runs[0][0])
    assert record["status"] == "failed", record
    assert needle in record["message"], record["message"]
    assert temp_tables(w.conn) == 0
    assert lock_holder(w.conn, job) is None
    assert w.state() == before, "the target table or etl.rejects changed"
    assert wait_row_writes(w.conn, TABLE, writes + written) - writes >= written


def test_value_too_long_for_the_warehouse_fails_while_staging(ready: Warehouse) -> None:
    """A commune code of 6 characters passes the spec (plain text) but not varchar(5): the
    COPY of the last file fails after the first three files were staged."""
    w = ready
    delivery = w.other
    folder = w.root / "too_long"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "land").mkdir(parents=True)
    files = sorted(w.folders[delivery].glob("land/parcels_*"))
    last = max(p.stem for p in files)  # files are read in name order
    for path in files:
        if path.stem != last:
            shutil.copy(path, folder / "land" / path.name)
    table = w.table.iloc[w.rows[delivery]]
    rows = table[table["city"] == last.removeprefix("parcels_")].copy()
    rows.iloc[-5:, rows.columns.get_loc("MAXA")] = rows["MAXA"].iloc[-5:] + "9"
    write_parcels(folder, rows, fields={**PARCEL_FIELDS, "MAXA": "str:6"})

    _run_into_error(w, w.env(folder), JOB, "character varying(5)")


def test_constraint_violated_during_the_merge(ready: Warehouse) -> None:
    """An admin vintage the warehouse's CHECK refuses ('2019') on the new parcels only: the
    merge's first statement closes and rewrites thousands of versions, the second fails."""
    w = ready
    jobs = w.root / "jobs_vintage"
    jobs.mkdir(exist_ok=True)
    spec = yaml.safe_load((Path(__file__).parents[2] / "etl/jobs/land_parcels.yml").read_text())
    spec["source"]["path"] = "land/vintage_*.shp"
    spec["fields"]["admin_vintage"] = "VINTAGE"
    (jobs / "land_parcels_vintage.yml").write_text(yaml.safe_dump(spec, allow_unicode=True))

    folder = w.root / "vintage"
    shutil.rmtree(folder, ignore_errors=True)
    table = w.table.copy()
    current = np.zeros(len(table), dtype=bool)
    current[w.rows[w.current]] = True
    table["VINTAGE"] = np.where(current, "2025", "2019")
    # the current parcels change too (a declared area no delivery had), so the first merge
    # statement rewrites them before the second one fails
    table.loc[current, "DIENTICH"] += 0.25
    ha_long = table[table["city"] == "ha_long"]
    assert (ha_long["VINTAGE"] == "2019").any() and (ha_long["VINTAGE"] == "2025").any()
    write_parcels(folder, ha_long, stem="vintage", fields={**PARCEL_FIELDS, "VINTAGE": "str:7"})

    env = w.env(folder, SDI_JOBS_DIR=str(jobs))
    # Every current Hạ Long parcel gets a new version (its declared area changed).
    rewritten = int((ha_long["VINTAGE"] == "2025").sum())
    _run_into_error(w, env, "land_parcels_vintage", "admin_vintage", written=2 * rewritten)


def test_lock_timeout_in_the_merge(ready: Warehouse) -> None:
    """Someone holds a row the merge must close (SELECT … FOR UPDATE); with lock_timeout set
    through PGOPTIONS the merge's first statement is cancelled midway."""
    w = ready
    target = w.other
    changed_key = w.table["key"].iloc[w.edited[0]]
    with psycopg.connect(w.url) as holder:
        holder.execute(
            "SELECT 1 FROM land.parcels WHERE natural_key = %s AND valid_to IS NULL FOR UPDATE",
            (changed_key,),
        )
        env = w.env(target, PGOPTIONS="-c lock_timeout=300ms")
        _run_into_error(w, env, JOB, "lock timeout")
        holder.rollback()
