"""Least privilege (issue 13): the API's role reads what is published and writes incidents.

The served app of the test session connects as this role (sdi.serve sets its URL); here we
connect as it directly and try what a bug or an injection would.
"""

from __future__ import annotations

import psycopg
import pytest

from sdi.db.roles import role_names, role_url
from sdi.settings import Settings


@pytest.fixture()
def as_api(loaded: dict, server: str, settings: Settings):
    with psycopg.connect(role_url(settings, "api"), autocommit=True) as conn:
        yield conn


def _refused(conn: psycopg.Connection, statement: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement)


def test_the_api_role_is_no_superuser_and_cannot_create(as_api: psycopg.Connection) -> None:
    row = as_api.execute(
        "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    assert row == (False, False, False)
    _refused(as_api, "CREATE TABLE ops.x (a int)")


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT owner_name FROM land.parcels_current LIMIT 1",
        "SELECT owner_name FROM land.parcels LIMIT 1",
        "SELECT * FROM land.parcels_current LIMIT 1",
        "SELECT reporter_phone FROM ops.incidents LIMIT 1",
        "SELECT reporter_name, reporter_email FROM ops.incidents LIMIT 1",
        "SELECT * FROM etl.rejects LIMIT 1",
        "SELECT * FROM etl.contributions LIMIT 1",
        "SELECT message FROM etl.runs LIMIT 1",
    ],
)
def test_the_api_role_cannot_read_personal_or_internal_columns(
    as_api: psycopg.Connection, statement: str
) -> None:
    _refused(as_api, statement)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE land.parcels SET address = 'x' WHERE false",
        "DELETE FROM construction.buildings WHERE false",
        "INSERT INTO etl.runs (job, status) VALUES ('x', 'running')",
        "UPDATE auth.api_keys SET revoked_at = NULL WHERE false",
        "DELETE FROM ops.incidents WHERE false",
        "DELETE FROM ops.incident_log WHERE false",
        "TRUNCATE ops.incidents",
    ],
)
def test_the_api_role_writes_nothing_but_incidents(
    as_api: psycopg.Connection, statement: str
) -> None:
    _refused(as_api, statement)


def test_the_api_role_reads_what_is_published(as_api: psycopg.Connection) -> None:
    assert as_api.execute("SELECT count(natural_key) FROM land.parcels_current").fetchone()[0] > 0
    columns = {
        c
        for (c,) in as_api.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'land' AND table_name = 'parcels_current'"
        )
    }
    assert "natural_key" in columns and "owner_name" not in columns


def test_the_served_api_connects_as_the_api_role(
    api, settings: Settings, db: psycopg.Connection
) -> None:
    assert api.get("/collections/parcels/items", params={"limit": 1}).status_code == 200
    users = {
        u
        for (u,) in db.execute(
            "SELECT usename FROM pg_stat_activity WHERE datname = current_database()"
        )
    }
    assert role_names(settings).api in users


def test_a_personal_column_is_granted_only_where_a_layer_publishes_it(
    server: str, settings: Settings, db: psycopg.Connection, tmp_path
) -> None:
    """permits_register (internal, keyed) publishes applicant_name (publish_personal), so the
    API reads it there; without that layer file no grant gives it, and owner_name and the
    reporters' contacts are never granted."""
    import shutil

    from sdi.db.roles import grant_statements

    api = role_names(settings).api

    def readable(table: str, column: str) -> bool:
        query = "SELECT has_column_privilege(%s, %s, %s, 'SELECT')"
        return db.execute(query, (api, table, column)).fetchone()[0]

    assert readable("construction.permits_current", "applicant_name")
    for table, column in [
        ("land.parcels_current", "owner_name"),
        ("land.parcels", "owner_name"),
        ("ops.incidents", "reporter_phone"),
        ("ops.incidents", "reporter_email"),
    ]:
        assert not readable(table, column), (table, column)
    layers = tmp_path / "layers"
    shutil.copytree(settings.layers_dir, layers)
    (layers / "permits_register.yml").unlink()
    without = settings.model_copy(update={"layers_dir": layers})
    permits = [s for s in grant_statements(db, without) if '"permits_current" TO' in s]
    assert permits and all("applicant_name" not in s and "(" in s for s in permits), permits
