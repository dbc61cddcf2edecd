"""`sdi db replica …`: a hot standby of the local cluster, its own folder and port.

The replica is made of the test session's cluster (the primary restarts once when it still
runs with wal_level=minimal: marked disruptive, these run last) and removed at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest

from sdi.db import LocalCluster
from sdi.db.cluster import PG_HBA, PG_HBA_REPLICATION
from sdi.db.replica import Replica, replicas, slot_name
from sdi.settings import PROJECT_DIR
from tests.support.replicas import local_primary, replica_of

pytestmark = pytest.mark.disruptive


@pytest.fixture(scope="module")
def standby(database_url: str) -> Iterator[tuple[LocalCluster, Replica, str]]:
    primary = local_primary(database_url)
    with replica_of(primary, database_url) as (replica, url):
        yield primary, replica, url


def sdi_db(*args: str) -> subprocess.CompletedProcess:
    """`sdi db …` on this checkout's local cluster (not the tests' SDI_DATABASE_URL)."""
    env = {k: v for k, v in os.environ.items() if k not in ("SDI_DATABASE_URL", "SDI_STATE_DIR")}
    env["SDI_STATE_DIR"] = str(PROJECT_DIR / ".sdi")
    return subprocess.run(
        [sys.executable, "-m", "sdi.db.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_the_replica_streams_the_primarys_writes_and_refuses_its_own(
    standby, database_url: str
) -> None:
    primary, replica, url = standby
    assert replica.port != primary.port and replica.data_dir.parent.parent == primary.replicas_dir
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS public.replica_probe (n int)")
        conn.execute("INSERT INTO public.replica_probe VALUES (42)")
        lsn = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
        for _ in range(100):
            if conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()[0]:
                break
            conn.execute("SELECT pg_sleep(0.05)")
        assert conn.execute("SELECT max(n) FROM public.replica_probe").fetchone()[0] == 42
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO public.replica_probe VALUES (1)")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE public.replica_probe")
        slot = conn.execute(
            "SELECT active FROM pg_replication_slots WHERE slot_name = %s",
            (slot_name(replica.name),),
        ).fetchone()
        assert slot == (True,)  # the primary keeps what the standby has not received
        assert conn.execute("SHOW wal_level").fetchone()[0] in ("replica", "logical")
    assert (primary.data_dir / "pg_hba.conf").read_text() == PG_HBA + PG_HBA_REPLICATION


def test_list_shows_it_streaming_and_its_lag(standby) -> None:
    _, replica, _ = standby
    shown = sdi_db("replica", "list")
    assert shown.returncode == 0, shown.stderr
    line = next(row for row in shown.stdout.splitlines() if row.startswith(replica.name))
    assert str(replica.port) in line and "streaming" in line


def test_stop_and_start_it_again(standby) -> None:
    _, replica, url = standby
    assert sdi_db("replica", "stop", replica.name).returncode == 0
    assert not replica.is_running()
    started = sdi_db("replica", "start", replica.name)
    assert started.returncode == 0, started.stderr
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True


def test_bad_names_and_unknown_replicas_are_clear_errors(standby) -> None:
    bad = sdi_db("replica", "add", "../x")
    assert bad.returncode != 0 and "invalid replica name" in bad.stderr
    assert "Traceback" not in bad.stderr
    unknown = sdi_db("replica", "stop", "nosuch")
    assert unknown.returncode != 0 and "there is no replica 'nosuch'" in unknown.stderr
    assert sdi_db("replica", "remove", "nosuch").stdout.strip() == "There is no replica nosuch."


def test_with_an_existing_database_replicas_are_its_dbas(database_url: str) -> None:
    env = {**os.environ, "SDI_DATABASE_URL": database_url}
    made = subprocess.run(
        [sys.executable, "-m", "sdi.db.cli", "replica", "add", "r9"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert made.returncode != 0 and "SDI_READ_DATABASE_URLS" in made.stderr


def test_remove_deletes_its_folder_and_slot(standby, database_url: str) -> None:
    primary, replica, _ = standby
    from sdi.db.replica import remove

    assert remove(primary.settings, replica.name) is True
    assert not replica.base_dir.exists()
    assert replica.name not in {r.name for r in replicas(primary)}
    assert primary.hba_rules() == PG_HBA  # the replication line goes with the last replica
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert (
            conn.execute(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s",
                (slot_name(replica.name),),
            ).fetchone()
            is None
        )
