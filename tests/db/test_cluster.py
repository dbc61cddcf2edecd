"""The local PostGIS cluster: on 127.0.0.1 only, scram-sha-256 passwords, PostGIS inside,
idempotent start, and a start after a crash. Real server, no mocks."""

from __future__ import annotations

import os
import socket
import stat

import psycopg
import pytest

from sdi.db import (
    DatabaseError,
    LocalCluster,
    connect,
    database_url,
    ensure_database,
    mask_url,
)
from sdi.db.cluster import kill_postmaster
from sdi.settings import Settings

# Read at collection, before session fixtures point SDI_DATABASE_URL at a test database.
LOCAL = Settings()


@pytest.fixture(scope="module")
def cluster() -> LocalCluster:
    if LOCAL.database_url:
        pytest.skip("SDI_DATABASE_URL is set: the local cluster is not used")
    ensure_database(LOCAL)
    return LocalCluster(LOCAL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def refused(host: str, port: int, family: socket.AddressFamily = socket.AF_INET) -> bool:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        return sock.connect_ex((host, port)) != 0


def test_answers_on_loopback_with_scram(cluster: LocalCluster) -> None:
    with connect(LOCAL) as conn:
        addr, port, user = conn.execute(
            "SELECT host(inet_server_addr()), inet_server_port(), current_user"
        ).fetchone()
        assert (addr, port, user) == ("127.0.0.1", cluster.port, cluster.settings.db_user)
        (stored,) = conn.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = current_user"
        ).fetchone()
        assert stored.startswith("SCRAM-SHA-256$")
        rules = conn.execute(
            "SELECT type, address, auth_method FROM pg_hba_file_rules WHERE error IS NULL"
        ).fetchall()
        assert rules == [("host", "127.0.0.1", "scram-sha-256")]


def test_wrong_password_is_refused(cluster: LocalCluster) -> None:
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(
            host="127.0.0.1",
            port=cluster.port,
            user=cluster.settings.db_user,
            password="not-the-password",
            dbname=cluster.settings.db_name,
            connect_timeout=5,
        )


def test_postgis_is_installed(cluster: LocalCluster) -> None:
    with connect(LOCAL) as conn:
        (version,) = conn.execute("SELECT postgis_full_version()").fetchone()
        assert version.startswith("POSTGIS=")
        (srid,) = conn.execute(
            "SELECT ST_SRID(ST_Transform('SRID=4326;POINT(107.1 21.0)'::geometry, 3857))"
        ).fetchone()
        assert srid == 3857


def test_listens_on_loopback_only(cluster: LocalCluster) -> None:
    with connect(LOCAL) as conn:
        (listen,) = conn.execute("SHOW listen_addresses").fetchone()
    assert listen == "127.0.0.1"
    assert not refused("127.0.0.1", cluster.port)
    # Linux routes all of 127/8 to lo: a server bound to 0.0.0.0 would answer here.
    assert refused("127.0.0.2", cluster.port)
    if socket.has_ipv6:
        assert refused("::1", cluster.port, socket.AF_INET6)


def test_start_twice_is_a_noop(cluster: LocalCluster) -> None:
    pid = cluster.status().pid
    url = cluster.url()
    assert cluster.start() is False
    assert cluster.start() is False
    assert cluster.is_running()
    assert cluster.status().pid == pid
    assert cluster.url() == url


def test_password_file_is_private(cluster: LocalCluster) -> None:
    mode = stat.S_IMODE(cluster.password_file.stat().st_mode)
    assert mode == 0o600


def test_database_url(cluster: LocalCluster) -> None:
    settings = cluster.settings
    url = database_url(settings)
    assert url.startswith(f"postgresql://{settings.db_user}:")
    assert url.endswith(f"@127.0.0.1:{settings.db_port}/{settings.db_name}")
    assert database_url(settings, dbname="other").endswith(f":{settings.db_port}/other")
    assert cluster.password() not in mask_url(url)


def test_explicit_url_is_checked_not_started(cluster: LocalCluster) -> None:
    explicit = Settings(database_url=cluster.url())
    assert ensure_database(explicit) == cluster.url()
    assert database_url(explicit, dbname="x").endswith(f"127.0.0.1:{cluster.port}/x")

    password = cluster.password()
    closed = Settings(database_url=f"postgresql://sdi:{password}@127.0.0.1:{free_port()}/sdi")
    with pytest.raises(DatabaseError, match="Cannot connect to SDI_DATABASE_URL") as error:
        ensure_database(closed)
    assert password not in str(error.value)


@pytest.mark.slow
def test_fresh_cluster_survives_a_crash(tmp_path) -> None:
    """init → start → kill -9 → start again, in a throwaway cluster on another port."""
    settings = Settings(state_dir=tmp_path / "state", db_port=free_port(), db_name="scratch")
    scratch = LocalCluster(settings)
    try:
        assert scratch.init() is True
        assert scratch.init() is False
        assert stat.S_IMODE(scratch.password_file.stat().st_mode) == 0o600
        if scratch.base_dir != settings.cluster_dir:  # root, and tmp_path unreachable
            assert os.geteuid() == 0
            assert "instead of" in (scratch.status().note or "")

        assert scratch.start() is True
        first_pid = scratch.status().pid
        assert kill_postmaster(scratch) == first_pid
        assert not scratch.is_running()
        assert (scratch.data_dir / "postmaster.pid").exists()  # stale, as after a crash

        assert scratch.start() is True
        assert scratch.is_running()
        scratch.ensure_database("scratch")
        with psycopg.connect(scratch.url("scratch")) as conn:
            assert conn.execute("SELECT postgis_lib_version()").fetchone()[0]
        scratch.drop_database("scratch")
        with pytest.raises(psycopg.OperationalError, match="does not exist"):
            psycopg.connect(scratch.url("scratch"))

        assert scratch.stop() is True
        assert scratch.stop() is False
    finally:
        scratch.destroy()
    assert not scratch.base_dir.exists()
