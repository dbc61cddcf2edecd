"""Roles by purpose (sdi.db.roles): created idempotently, grants printable for a DBA."""

from __future__ import annotations

import time

import psycopg
import pytest

from sdi.db.roles import apply_grants, role_url
from sdi.settings import Settings
from tests.conftest import run_sdi


def test_roles_and_grants_are_idempotent(migrated: str, settings: Settings) -> None:
    with psycopg.connect(migrated, autocommit=True) as conn:
        first = apply_grants(conn, settings)
        assert apply_grants(conn, settings) == first
    for purpose in ("api", "etl"):  # the same password every time: the roles still log in
        with psycopg.connect(role_url(settings, purpose)) as conn:
            assert conn.execute("SELECT current_user").fetchone()[0].endswith(f"_{purpose}")


def test_grants_print_gives_a_dba_the_sql(migrated: str) -> None:
    result = run_sdi("db", "grants", "--print")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("-- CREATE ROLE") for line in lines)
    assert any(line.startswith("GRANT SELECT (") and "land" in line for line in lines)
    assert all(line.endswith(";") for line in lines if line.startswith("GRANT"))
    assert "owner_name" not in result.stdout and "reporter_phone" not in result.stdout
    # applicant_name: only to the keyed role, which the API's login role reaches by SET ROLE
    permits = [line for line in lines if '"construction"."permits_current" TO' in line]
    to_api = [line for line in permits if line.endswith('_api";')]
    to_keyed = [line for line in permits if line.endswith('_api_personal";')]
    assert to_api and all("(" in line and "applicant_name" not in line for line in to_api)
    assert to_keyed and all("(" not in line or "applicant_name" in line for line in to_keyed)
    assert any(line.startswith("-- CREATE ROLE") and "_api_personal" in line for line in lines)
    assert any(
        line.startswith("GRANT") and line.endswith('_api";') and "_api_personal" in line
        for line in lines
    )


def test_the_etl_runs_as_the_etl_role_which_reads_no_key_and_alters_nothing(
    loaded: dict, migrated: str, settings: Settings
) -> None:
    """The runner is handed the owner's URL but connects as the ETL role (seen from another
    session while the run holds its job lock); that role writes the warehouse and no more."""
    from sdi.db.roles import etl_url, role_names
    from sdi.etl.runner import run_job
    from sdi.etl.spec import discover_jobs, load_job

    roles = role_names(settings)
    seen: list[tuple[str, bool]] = []

    def on_start(total: int | None) -> None:
        with psycopg.connect(migrated, autocommit=True) as conn:
            seen.extend(
                conn.execute(
                    "SELECT a.usename::text, r.rolsuper FROM pg_locks l "
                    "JOIN pg_stat_activity a ON a.pid = l.pid "
                    "JOIN pg_roles r ON r.rolname = a.usename "
                    "WHERE l.locktype = 'advisory' AND l.database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())"
                ).fetchall()
            )

    job = load_job(discover_jobs(settings)["admin_communes"], settings)
    result = run_job(job, migrated, force=True, dry_run=True, settings=settings, on_start=on_start)
    assert result.status == "succeeded"
    assert seen == [(roles.etl, False)]
    with psycopg.connect(etl_url(migrated, settings), autocommit=True) as etl:
        assert etl.execute("SELECT session_user").fetchone()[0] == roles.etl
        for statement in (
            "SELECT key_sha256 FROM auth.api_keys LIMIT 1",
            "SELECT * FROM auth.api_keys LIMIT 1",
            f"ALTER ROLE \"{roles.api}\" PASSWORD 'x'",
            "CREATE ROLE sdi_intruder",
            f'GRANT "{roles.personal}" TO "{roles.etl}"',
            "DROP TABLE land.parcels",
            "ALTER TABLE land.parcels ADD COLUMN x int",
            "CREATE TABLE land.x (a int)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                etl.execute(statement)
        # the owner's functions it may call: it cannot ANALYZE what it does not own, so it asks
        # etl.analyze (0012d), which takes warehouse tables only
        etl.execute("SELECT etl.analyze('land.zoning'::regclass)")
        with pytest.raises(psycopg.errors.RaiseException, match="not a table of the warehouse"):
            etl.execute("SELECT etl.analyze('auth.api_keys'::regclass)")


def test_the_etl_role_refreshes_the_statistics_of_what_it_loads(
    loaded: dict, migrated: str, settings: Settings
) -> None:
    """The after-load ANALYZE (sdi.etl.hooks.analyze) happens although the ETL role owns no
    table: through etl.analyze, as the owner."""
    from sdi.db.roles import etl_url
    from sdi.etl.hooks import analyze

    def analysed() -> object:
        with psycopg.connect(migrated, autocommit=True) as conn:
            return conn.execute(
                "SELECT last_analyze FROM pg_stat_all_tables "
                "WHERE relid = 'utility.street_lamps'::regclass"
            ).fetchone()[0]

    before = analysed()
    with psycopg.connect(etl_url(migrated, settings), autocommit=True) as etl:
        analyze(etl, "utility.street_lamps")
    deadline = time.monotonic() + 5  # the statistics collector reports a little later
    while (after := analysed()) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert after is not None and (before is None or after > before)


def test_the_etl_role_drops_and_remakes_the_indexes_of_an_empty_table_through_the_owner(
    loaded: dict, migrated: str, settings: Settings
) -> None:
    """A first load's indexes (sdi.etl.merge.drop_indexes_if_empty): the ETL role owns no
    table, so the owner's etl.suspend_indexes drops them and etl.restore_indexes makes them
    again from definitions the caller cannot write."""
    from sdi.db.roles import etl_url

    table = "planning.land_use_conflicts"  # derived, emptied and rebuilt here in a rollback

    def indexes(conn: psycopg.Connection) -> set[str]:
        return {
            name
            for (name,) in conn.execute(
                "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass",
                (table,),
            )
        }

    with psycopg.connect(etl_url(migrated, settings)) as etl:
        before = indexes(etl)
        with etl.transaction(force_rollback=True):
            etl.execute(f"DELETE FROM {table}")
            dropped = etl.execute(
                "SELECT etl.suspend_indexes(%s::regclass, NULL)", (table,)
            ).fetchall()
            assert dropped and len(indexes(etl)) < len(before)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                etl.execute("INSERT INTO pg_temp.sdi_suspended_indexes VALUES (NULL, 'x')")
        with etl.transaction(force_rollback=True):
            etl.execute(f"DELETE FROM {table}")
            etl.execute("SELECT etl.suspend_indexes(%s::regclass, NULL)", (table,))
            (made,) = etl.execute("SELECT etl.restore_indexes(%s::regclass)", (table,)).fetchone()
            assert made == len(dropped) and indexes(etl) == before
        # a temporary table of the caller's under that name is refused, not trusted
        with etl.transaction(force_rollback=True):
            etl.execute("CREATE TEMP TABLE sdi_suspended_indexes (relation regclass, d text)")
            etl.execute(f"DELETE FROM {table}")
            with pytest.raises(psycopg.errors.RaiseException, match="not the owner"):
                etl.execute("SELECT etl.suspend_indexes(%s::regclass, NULL)", (table,))
