"""Tables declared in job specs: generated Alembic revisions, applied to a real PostGIS.

A scratch copy of schemas/ (so generated revisions never land in the checkout) and a scratch
database of its own; the declared table must have exactly the bookkeeping of a built-in one.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from sdi.db.migrate import head_revision
from sdi.db.tables import DestructiveChange, declared_state, generated_revisions
from sdi.settings import PROJECT_DIR, Settings, get_settings
from tests.support.etl_runs import scratch_database

# sha256 of every statement the frozen migrations 0001, 0002 and 0006 execute (upgrade and
# downgrade), recorded before they delegated to sdi.db.tables: delegation must not change a
# byte of the warehouse they built.
FROZEN_DDL_SHA256 = "0e68000002db0aad882ea8888668cebb6da62f96fe2331016268e6e99910eb31"
# The same for 0011, recorded while it still loaded 0001's helper by file path.
FROZEN_0011_SHA256 = "249b292bfe83b4d3742fb073b84c2af835a959adb5364c938c49d2fb6855ab93"
FROZEN = ("0001_warehouse", "0002_contributions_and_as_of", "0006_hazard_zones_more")

JOB = """\
title: Points of interest of the culture office
source: {{path: pois.gpkg, srid: 4326}}
target:
  table: culture.pois
  geometry: Point
  columns:
{columns}
natural_key: poi_id
fields:
  poi_id: {{from: poi_id, required: true}}
  name: name
"""
COLUMNS = {"poi_id": "{type: text, not_null: true}", "name": "text", "visitors": "integer"}


def frozen_statements(names: tuple[str, ...] = FROZEN) -> list[str]:
    """What the frozen migrations hand to op.execute, in order."""
    import alembic.op

    recorded: list[str] = []
    saved = getattr(alembic.op, "execute", None)
    alembic.op.execute = lambda statement, *a, **k: recorded.append(str(statement))
    try:
        versions = PROJECT_DIR / "schemas" / "migrations" / "versions"
        for name in names:
            spec = importlib.util.spec_from_file_location(f"frozen_{name}", versions / f"{name}.py")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            for step in ("upgrade", "downgrade"):
                recorded.append(f"-- {name}.{step}")
                getattr(module, step)()
    finally:
        if saved is not None:
            alembic.op.execute = saved
    return recorded


def test_frozen_migrations_write_the_same_ddl_through_the_shared_function() -> None:
    digest = hashlib.sha256(json.dumps(frozen_statements()).encode()).hexdigest()
    assert digest == FROZEN_DDL_SHA256


def test_0011_uses_the_shared_function_and_writes_the_same_ddl() -> None:
    text = (PROJECT_DIR / "schemas/migrations/versions/0011_disaster_risk.py").read_text()
    assert "from sdi.db.tables import" in text and "spec_from_file_location" not in text
    digest = hashlib.sha256(
        json.dumps(frozen_statements(("0011_disaster_risk",))).encode()
    ).hexdigest()
    assert digest == FROZEN_0011_SHA256


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    """A project home with a copy of schemas/ and a jobs folder of its own."""
    shutil.copytree(
        PROJECT_DIR / "schemas", tmp_path / "schemas", ignore=shutil.ignore_patterns("__pycache__")
    )
    (tmp_path / "jobs").mkdir()
    return tmp_path


def write_job(home: Path, columns: dict[str, str]) -> None:
    body = "\n".join(f"    {name}: {kind}" for name, kind in columns.items())
    (home / "jobs" / "culture_pois.yml").write_text(JOB.format(columns=body), encoding="utf-8")


@pytest.fixture()
def scratch(home: Path, migrated: str, settings: Settings) -> Iterator[tuple[Settings, str]]:
    local = Settings(
        home=home,
        jobs_dir=home / "jobs",
        state_dir=settings.state_dir,
        source_dir=home,
        database_url=migrated,
    )
    with scratch_database(migrated, local, "sdi_gen") as url:
        yield (
            Settings(
                home=home,
                jobs_dir=home / "jobs",
                state_dir=settings.state_dir,
                source_dir=home,
                database_url=url,
            ),
            url,
        )


def sdi(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update(
        SDI_HOME=str(settings.home),
        SDI_JOBS_DIR=str(settings.jobs_dir),
        SDI_SOURCE_DIR=str(settings.source_dir),
        SDI_DATABASE_URL=str(settings.database_url),
    )
    return subprocess.run(
        [sys.executable, "-m", "sdi", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def columns_of(conn: psycopg.Connection, schema: str, table: str) -> list[tuple[str, str, str]]:
    return conn.execute(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
        (schema, table),
    ).fetchall()


def indexes_of(conn: psycopg.Connection, schema: str, table: str) -> set[str]:
    rows = conn.execute(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s",
        (schema, table),
    ).fetchall()
    # the same definitions with the table's name taken out
    return {r[0].replace(f"{schema}.{table}", "T").replace(f"{table}_", "T_") for r in rows}


def test_a_declared_table_has_the_bookkeeping_of_a_built_in_one(scratch, home: Path) -> None:
    local, url = scratch
    write_job(home, COLUMNS)
    done = sdi(local, "table", "sync", "--apply")
    assert done.returncode == 0, done.stderr
    revision = home / "schemas" / "migrations" / "versions" / "t0001_pois.py"
    assert revision.is_file(), done.stderr
    text = revision.read_text()
    head = head_revision(get_settings())  # the hand-written head the revision follows
    assert f'down_revision = "{head}"' in text and "create_feature_table(op.execute, TABLE)" in text
    assert f"warehouse schema: {head} → t0001_pois" in done.stderr
    with psycopg.connect(url) as conn:
        built_in = columns_of(conn, "utility", "street_lamps")
        declared = columns_of(conn, "culture", "pois")
        domain = {
            "lamp_code",
            "road_id",
            "road_name",
            "status",
            "power_w",
            "install_year",
            "cabinet_id",
        }
        assert [c for c in built_in if c[0] not in domain] == [
            c for c in declared if c[0] not in COLUMNS
        ]
        assert ("poi_id", "text", "NO") in declared and ("visitors", "integer", "YES") in declared
        assert indexes_of(conn, "utility", "street_lamps") == indexes_of(conn, "culture", "pois")
        assert (
            conn.execute(
                "SELECT count(*) FROM pg_constraint WHERE conrelid = 'culture.pois'::regclass "
                "AND contype = 'f'"
            ).fetchone()[0]
            == 0
        )  # no per-row run_id foreign key, like the built-in tables (0005)
        assert conn.execute("SELECT count(*) FROM culture.pois_as_of(now())").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM culture.pois_current").fetchone() == (0,)
        assert conn.execute("SELECT to_regclass('culture.pois_id_seq') IS NOT NULL").fetchone()[0]
    # Nothing changed: a second sync writes nothing.
    again = sdi(local, "table", "sync", "--check")
    assert again.returncode == 0 and "every one has its revision" in again.stderr


def test_an_added_column_and_a_widened_type_are_the_next_revision(scratch, home: Path) -> None:
    local, url = scratch
    write_job(home, COLUMNS)
    assert sdi(local, "table", "sync", "--apply").returncode == 0
    with psycopg.connect(url, autocommit=True) as conn:
        run = conn.execute(
            "INSERT INTO etl.runs (job, status) VALUES ('t', 'succeeded') RETURNING run_id"
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO culture.pois (natural_key, poi_id, name, visitors, run_id, valid_from, "
            "row_hash, geom) VALUES ('a', 'a', 'Chùa Long Tiên', 1200, %s, now(), "
            "gen_random_uuid(), ST_SetSRID(ST_MakePoint(107.08, 20.95), 4326))",
            (run,),
        )
    write_job(home, {**COLUMNS, "visitors": "bigint", "opened_on": "date"})
    check = sdi(local, "table", "sync", "--check")
    assert check.returncode == 1 and "add opened_on date" in check.stderr
    assert "widen visitors integer → bigint" in check.stderr
    done = sdi(local, "table", "sync", "--apply")
    assert done.returncode == 0, done.stderr
    versions = home / "schemas" / "migrations" / "versions"
    second = versions / "t0002_pois.py"
    assert 'down_revision = "t0001_pois"' in second.read_text()
    assert [r.revision for r in generated_revisions(versions)] == ["t0001_pois", "t0002_pois"]
    assert declared_state(versions)["culture.pois"].column("opened_on").type == "date"
    with psycopg.connect(url) as conn:
        declared = dict((c[0], c[1]) for c in columns_of(conn, "culture", "pois"))
        assert declared["visitors"] == "bigint" and declared["opened_on"] == "date"
        # the existing row kept its values; the view and as-of see the new column
        assert conn.execute(
            "SELECT name, visitors, opened_on FROM culture.pois_current"
        ).fetchone() == ("Chùa Long Tiên", 1200, None)
        assert conn.execute("SELECT visitors FROM culture.pois_as_of(now())").fetchone() == (1200,)
    # and the generated revision downgrades cleanly
    from alembic import command

    from sdi.db.migrate import alembic_config

    command.downgrade(alembic_config(url, local), "t0001_pois")
    with psycopg.connect(url) as conn:
        declared = dict((c[0], c[1]) for c in columns_of(conn, "culture", "pois"))
        assert declared["visitors"] == "integer" and "opened_on" not in declared
        assert conn.execute("SELECT visitors FROM culture.pois_current").fetchone() == (1200,)


@pytest.mark.parametrize(
    ("columns", "says"),
    [
        ({"poi_id": "{type: text, not_null: true}", "name": "text"}, "column visitors dropped"),
        ({**COLUMNS, "visitors": "text", "name": "integer"}, "column name text → integer"),
        ({**COLUMNS, "rank": "{type: integer, not_null: true}"}, "new column rank is NOT NULL"),
    ],
)
def test_a_destructive_change_is_refused_and_says_how(
    scratch, home: Path, columns: dict[str, str], says: str
) -> None:
    local, _url = scratch
    write_job(home, COLUMNS)
    assert sdi(local, "table", "sync").returncode == 0
    write_job(home, columns)
    refused = sdi(local, "table", "sync")
    assert refused.returncode == 2, refused.stderr
    assert says in refused.stderr and "deliberately" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (home / "schemas" / "migrations" / "versions" / "t0002_pois.py").exists()
    from sdi.db.tables import plan_change
    from sdi.etl.spec import load_job

    with pytest.raises(DestructiveChange):
        plan_change(
            declared_state(home / "schemas" / "migrations" / "versions")["culture.pois"],
            load_job(home / "jobs" / "culture_pois.yml", local).declared,
        )


def test_a_field_without_a_declared_column_is_a_clear_error(home: Path, settings) -> None:
    write_job(home, {"poi_id": "text"})  # `name` is mapped in fields but not declared
    local = Settings(home=home, jobs_dir=home / "jobs", database_url=settings.database_url)
    done = sdi(local, "table", "sync")
    assert done.returncode == 2
    assert "fields name are not declared in target.columns" in done.stderr


def test_declaring_a_built_in_table_is_refused(home: Path, settings) -> None:
    (home / "jobs" / "lamps.yml").write_text(
        JOB.format(columns="    lamp_code: text")
        .replace("culture.pois", "utility.street_lamps")
        .replace("poi_id: {from: poi_id, required: true}\n  name: name", "lamp_code: poi_id"),
        encoding="utf-8",
    )
    local = Settings(home=home, jobs_dir=home / "jobs", database_url=settings.database_url)
    done = sdi(local, "table", "sync")
    assert done.returncode == 2
    assert "created by the hand-written migration 0001_warehouse.py" in done.stderr
    assert not list((home / "schemas" / "migrations" / "versions").glob("t*.py"))


def test_the_checkout_has_a_revision_for_every_declared_table() -> None:
    """A job spec that declares or grows a table is committed with its generated revision."""
    from sdi.etl.declared import sync

    result = sync(Settings(), write=False)
    assert not result.problems, result.problems
    assert not result.written, "run `sdi table sync` and commit: " + ", ".join(
        f"{w.path.name} ({w.change})" for w in result.written
    )
