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
        "SELECT applicant_name FROM construction.permits_current LIMIT 1",
        "SELECT applicant_name FROM construction.permits LIMIT 1",
        "SELECT * FROM construction.permits_current LIMIT 1",
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
    """permits_register (internal, keyed) publishes applicant_name (publish_personal): only
    the keyed role reads it there, never the API's login role; without that layer file no
    grant gives it, and owner_name and the reporters' contacts are never granted."""
    import shutil

    from sdi.db.roles import grant_statements

    roles = role_names(settings)

    def readable(role: str, table: str, column: str) -> bool:
        query = "SELECT has_column_privilege(%s, %s, %s, 'SELECT')"
        return db.execute(query, (role, table, column)).fetchone()[0]

    assert readable(roles.personal, "construction.permits_current", "applicant_name")
    assert readable(roles.personal, "construction.permits", "applicant_name")
    assert not readable(roles.api, "construction.permits_current", "applicant_name")
    for role in (roles.api, roles.personal):
        for table, column in [
            ("land.parcels_current", "owner_name"),
            ("land.parcels", "owner_name"),
            ("ops.incidents", "reporter_phone"),
            ("ops.incidents", "reporter_email"),
        ]:
            assert not readable(role, table, column), (role, table, column)
    layers = tmp_path / "layers"
    shutil.copytree(settings.layers_dir, layers)
    (layers / "permits_register.yml").unlink()
    without = settings.model_copy(update={"layers_dir": layers})
    permits = [s for s in grant_statements(db, without) if '"permits_current" TO' in s]
    assert permits and all("applicant_name" not in s and "(" in s for s in permits), permits


def test_the_keyed_role_is_reached_only_by_set_role(
    as_api: psycopg.Connection, settings: Settings
) -> None:
    """The login role is a member of the keyed role without inheriting it: its privileges
    apply only after SET ROLE (which the API does inside a keyed request's transaction), and
    even then owner_name and the writes stay refused."""
    roles = role_names(settings)
    _refused(as_api, "SELECT applicant_name FROM construction.permits_current LIMIT 1")
    with as_api.transaction():
        as_api.execute(f'SET LOCAL ROLE "{roles.personal}"')
        assert as_api.execute("SELECT current_user").fetchone()[0] == roles.personal
        names = as_api.execute(
            "SELECT count(applicant_name) FROM construction.permits_current"
        ).fetchone()[0]
        assert names > 0
    assert as_api.execute("SELECT current_user").fetchone()[0] == roles.api
    with as_api.transaction():
        as_api.execute(f'SET LOCAL ROLE "{roles.personal}"')
        _refused(as_api, "SELECT owner_name FROM land.parcels_current LIMIT 1")
    with as_api.transaction():
        as_api.execute(f'SET LOCAL ROLE "{roles.personal}"')
        _refused(as_api, "INSERT INTO ops.incident_log DEFAULT VALUES")


def test_keyed_reads_show_applicant_names_and_anonymous_reads_never(
    api, db: psycopg.Connection
) -> None:
    """Over HTTP: the construction department's key reads applicant_name through the keyed
    role; an anonymous client and another department's key get a 404."""
    from sdi.keys import create_key

    _, construction = create_key(db, "construction", "roles test")
    _, planning = create_key(db, "planning", "roles test")
    path = "/collections/permits_register/items"
    keyed = api.get(path, params={"limit": 5}, headers={"X-API-Key": construction})
    assert keyed.status_code == 200, keyed.text
    assert all(f["properties"]["applicant_name"] for f in keyed.json()["features"])
    assert api.get(path, params={"limit": 5}).status_code == 404
    other = api.get(path, params={"limit": 5}, headers={"X-API-Key": planning})
    assert other.status_code == 404
    public = api.get("/collections/permits/items", params={"limit": 5})
    assert public.status_code == 200
    assert all("applicant_name" not in f["properties"] for f in public.json()["features"])
