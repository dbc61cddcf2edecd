"""Running ETL jobs the way an operator does (issue "ETL refresh jobs that analysts can
trust", item 6): serialised runs, exit codes, dry runs, skips, and the run history.

Every command is a real `sdi` subprocess (real exit codes and stderr) against the session's
test database, which holds the sample deliveries; no test here changes a target table's
content (a forced reload of the same delivery changes nothing).
"""

from __future__ import annotations

import csv
import re
import time
from pathlib import Path

import numpy as np
import psycopg
import pytest
import yaml

from tests.conftest import PROJECT_DIR, SAMPLE_SCALE
from tests.support.etl_runs import (
    assert_no_traceback,
    backend,
    last_run_id,
    lock_holder,
    modify,
    parcel_table,
    rejects_state,
    run_record,
    sdi,
    sdi_env,
    start,
    table_state,
    wait_for,
    write_parcels,
)

JOB = "land_parcels"
TABLE = "land.parcels"
SPEC = PROJECT_DIR / "etl" / "jobs" / "land_parcels.yml"


def _flat(text: str) -> str:
    """Console output without the line breaks a narrow console may add."""
    return "".join(text.splitlines())


def _counts(stderr: str) -> dict[str, int]:
    """The counts `sdi etl run` printed for a run ('…: 6000 read, 0 added, …')."""
    return {what: int(n) for n, what in re.findall(r"(\d+) (\w+)", _flat(stderr))}


@pytest.fixture()
def env(loaded, settings, migrated) -> dict[str, str]:
    """The environment of `sdi` pointed at the test database and the sample deliveries."""
    return sdi_env(migrated, settings.source_dir, settings.state_dir)


@pytest.fixture()
def before(db) -> tuple:
    return table_state(db, TABLE), rejects_state(db)


def _unchanged(db: psycopg.Connection, before: tuple) -> None:
    assert (table_state(db, TABLE), rejects_state(db)) == before, "a table changed"


def _jobs_dir(tmp_path: Path, name: str, **changes: object) -> Path:
    """A jobs folder with one spec: land_parcels.yml with ``changes`` applied to its source."""
    spec = yaml.safe_load(SPEC.read_text())
    spec["source"].update(changes)
    jobs = tmp_path / "jobs"
    jobs.mkdir(exist_ok=True)
    (jobs / f"{name}.yml").write_text(yaml.safe_dump(spec, allow_unicode=True, sort_keys=False))
    return jobs


# -- two runs of one job ---------------------------------------------------------------------


def test_a_second_run_of_a_running_job_fails_fast(env, db, migrated, before) -> None:
    """The first run is held by the test's own table lock (at its first read of the target);
    a second run of the same job must not wait for it, nor touch its run record: exit 5,
    'already running'."""
    since = last_run_id(db)
    holder = psycopg.connect(migrated)
    first, err = None, ""
    try:
        holder.execute("LOCK TABLE land.parcels IN ACCESS EXCLUSIVE MODE")
        first = start(env, "etl", "run", JOB, "--force")
        pid = wait_for("the first run's lock", lambda: lock_holder(db, JOB), first)
        wait_for(
            "the first run to wait for the table lock",
            lambda: backend(db, pid)[1] == "Lock",
            first,
        )
        started = time.monotonic()
        second = sdi(env, "etl", "run", JOB, "--force", timeout=60)
        elapsed = time.monotonic() - started
        assert second.returncode == 5, second.stderr
        assert "already running" in _flat(second.stderr)
        assert_no_traceback(second)
        assert elapsed < 15, f"the second run took {elapsed:.1f} s to give up"
        assert first.poll() is None, "the first run did not wait for the table lock"
        (status,) = db.execute(
            "SELECT status FROM etl.runs WHERE run_id > %s AND job = %s", (since, JOB)
        ).fetchone()
        assert status == "running"  # the second run neither recorded a run nor failed it
    finally:
        holder.rollback()
        holder.close()
        if first is not None:
            _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    counts = _counts(err)
    assert (counts["added"], counts["updated"], counts["retired"]) == (0, 0, 0), err
    runs = db.execute(
        "SELECT run_id, status FROM etl.runs WHERE run_id > %s ORDER BY run_id", (since,)
    ).fetchall()
    assert [s for _, s in runs] == ["succeeded"]
    _unchanged(db, before)


# -- exit codes ------------------------------------------------------------------------------


def test_too_many_rejects_exit_4_and_write_nothing(env, db, before, tmp_path) -> None:
    """One Hạ Long file where 40 of 1,500 parcels carry an unknown land-use code and one
    repeats a key (2.7 % > the job's 1 %): exit 4, nothing written, every reject reported."""
    table = parcel_table(SAMPLE_SCALE)
    rows = table[table["city"] == "ha_long"].reset_index(drop=True)
    rows.loc[10:49, "KHLOAIDAT"] = "XYZ"
    rows.loc[100, ["MAXA", "SOTO", "SOTHUA"]] = rows.loc[99, ["MAXA", "SOTO", "SOTHUA"]]
    write_parcels(tmp_path / "delivery", rows, stem="bad")
    jobs = _jobs_dir(tmp_path, "parcels_bad", path="land/bad_*.shp")
    bad_env = {**env, "SDI_SOURCE_DIR": str(tmp_path / "delivery"), "SDI_JOBS_DIR": str(jobs)}

    done = sdi(bad_env, "etl", "run", "parcels_bad")
    assert done.returncode == 4, done.stderr
    assert_no_traceback(done)
    message = _flat(done.stderr)
    assert "41 of 1500 rows of bad_ha_long.shp rejected" in message, message
    assert "nothing was written" in message, message
    assert table_state(db, TABLE) == before[0], "land.parcels changed"
    run_id = last_run_id(db)
    record = run_record(db, run_id)
    assert (record["job"], record["status"], record["rejected"]) == ("parcels_bad", "rejected", 41)
    assert record["added"] == record["updated"] == record["retired"] == 0

    expected = {(n, "KHLOAIDAT: unknown land_use code 'XYZ'") for n in range(11, 51)}
    report = sdi(env, "etl", "report", str(run_id))
    assert report.returncode == 0, report.stderr
    assert_no_traceback(report)
    lines = [line for line in report.stdout.splitlines() if "bad_ha_long.shp" in line]
    assert len(lines) == 41, report.stdout
    for number, reason in expected:
        assert any(re.search(rf"│\s*{number}\s*│", ln) and reason in ln for ln in lines), number
    assert any(re.search(r"│\s*101\s*│", ln) and "duplicate natural key" in ln for ln in lines)
    assert "41 rejected rows" in report.stderr

    out = tmp_path / "rejects.csv"
    written = sdi(env, "etl", "report", str(run_id), "--csv", str(out))
    assert written.returncode == 0, written.stderr
    with out.open(newline="") as handle:
        reader = list(csv.DictReader(handle))
    assert len(reader) == 41
    assert all(r["source_path"].endswith("land/bad_ha_long.shp") for r in reader)
    got = {(int(r["row_number"]), r["reason"]) for r in reader}
    assert expected <= got
    duplicate = next(r for r in reader if r["row_number"] == "101")
    assert duplicate["reason"].startswith("duplicate natural key")
    assert "row 100" in duplicate["reason"]  # where the key was first seen


def test_a_broken_spec_exits_2_naming_file_line_and_key(env, tmp_path) -> None:
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    text = SPEC.read_text().replace("  encoding: tcvn3", "  encodng: tcvn3")
    line = text.splitlines().index("  encodng: tcvn3") + 1
    (jobs / "broken.yml").write_text(text)
    done = sdi({**env, "SDI_JOBS_DIR": str(jobs)}, "etl", "run", "broken")
    assert done.returncode == 2, done.stderr
    assert_no_traceback(done)
    assert f"broken.yml:{line}: source.encodng: unknown key" in _flat(done.stderr)


def test_a_missing_source_file_exits_3_naming_the_path(env, db, tmp_path) -> None:
    since = last_run_id(db)
    jobs = _jobs_dir(tmp_path, "parcels_late", path="land/not_delivered_*.shp")
    done = sdi({**env, "SDI_JOBS_DIR": str(jobs)}, "etl", "run", "parcels_late")
    assert done.returncode == 3, done.stderr
    assert_no_traceback(done)
    assert "land/not_delivered_*.shp" in _flat(done.stderr)
    assert last_run_id(db) == since  # nothing to run, nothing recorded


def test_an_unknown_job_exits_2(env) -> None:
    done = sdi(env, "etl", "run", "no_such_job")
    assert done.returncode == 2, done.stderr
    assert_no_traceback(done)
    assert "unknown job(s): no_such_job" in _flat(done.stderr)


# -- dry run, skip, force --------------------------------------------------------------------


def test_dry_run_counts_the_changes_and_writes_nothing(env, db, before, tmp_path) -> None:
    """The sample delivery with 40 parcels edited, 30 gone and 20 new: a dry run counts
    exactly that and leaves the warehouse as it was."""
    table = parcel_table(SAMPLE_SCALE)
    order = np.random.default_rng(6).permutation(len(table))
    table = modify(table, order[:40])
    new = order[40:60]
    table.loc[table.index[new], "SOTHUA"] = 900_000 + np.arange(20, dtype=np.int32)
    delivery = table.drop(index=table.index[order[60:90]])
    write_parcels(tmp_path, delivery)
    since = last_run_id(db)

    done = sdi({**env, "SDI_SOURCE_DIR": str(tmp_path)}, "etl", "run", JOB, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert_no_traceback(done)
    counts = _counts(done.stderr)
    expected = {"read": len(delivery), "added": 20, "updated": 40, "retired": 30 + 20}
    assert {k: counts[k] for k in expected} == expected, done.stderr
    assert "dry run" in done.stderr
    _unchanged(db, before)

    (run_id,) = db.execute("SELECT run_id FROM etl.runs WHERE run_id > %s", (since,)).fetchone()
    record = run_record(db, run_id)
    assert record["status"] == "succeeded"
    assert record["message"].startswith("dry run")
    assert record["options"]["dry_run"] is True
    assert (record["added"], record["updated"], record["retired"]) == (20, 40, 50)


def test_force_reloads_with_no_changes_then_an_unchanged_delivery_is_skipped(
    env, db, before
) -> None:
    forced = sdi(env, "etl", "run", JOB, "--force")
    assert forced.returncode == 0, forced.stderr
    assert_no_traceback(forced)
    counts = _counts(forced.stderr)
    assert (counts["added"], counts["updated"], counts["retired"]) == (0, 0, 0), forced.stderr
    forced_id = last_run_id(db)
    record = run_record(db, forced_id)
    assert record["status"] == "succeeded"
    assert record["unchanged"] == record["rows_read"] > 0

    again = sdi(env, "etl", "run", JOB)
    assert again.returncode == 0, again.stderr
    assert_no_traceback(again)
    assert "skipped" in again.stderr
    skipped = run_record(db, last_run_id(db))
    assert skipped["run_id"] > forced_id
    assert skipped["status"] == "skipped"
    _unchanged(db, before)


def test_runs_lists_recent_runs_with_their_status(env, db) -> None:
    sdi(env, "etl", "run", JOB)  # at least one run of the job exists
    done = sdi(env, "etl", "runs", "--job", JOB, "--limit", "5")
    assert done.returncode == 0, done.stderr
    assert_no_traceback(done)
    recent = db.execute(
        "SELECT run_id, status FROM etl.runs WHERE job = %s ORDER BY run_id DESC LIMIT 5",
        (JOB,),
    ).fetchall()
    lines = done.stdout.splitlines()
    for run_id, status in recent:
        row = [ln for ln in lines if re.match(rf"\s*│\s*{run_id}\s*│", ln)]
        assert len(row) == 1, done.stdout
        assert f" {JOB} " in row[0] and f" {status} " in row[0], row[0]
    older = db.execute(
        "SELECT run_id FROM etl.runs WHERE job = %s ORDER BY run_id DESC OFFSET 5 LIMIT 1",
        (JOB,),
    ).fetchone()
    if older:
        assert not any(re.match(rf"\s*│\s*{older[0]}\s*│", ln) for ln in lines)
