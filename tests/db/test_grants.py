"""Roles by purpose (sdi.db.roles): created idempotently, grants printable for a DBA."""

from __future__ import annotations

import psycopg

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
