"""Shared fixtures: a real PostGIS database, real sample deliveries, a real OGC API server.

The tests use the project's local cluster (or SDI_TEST_DATABASE_URL) with a database of their
own, ``sdi_test``, recreated for each session; the server runs on a free loopback port and is
stopped at the end.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from sdi.settings import PROJECT_DIR, Settings, get_settings
from tests.support.environment import sdi_settings

# One database per test session, so concurrent sessions (two checkouts, a developer and CI)
# never drop each other's data; databases of sessions that died are removed at the next start.
TEST_DB = f"sdi_test_{os.getpid()}"
SAMPLE_SCALE = 0.25
TEST_DATA = Path(__file__).parent / "data"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that stop the shared database cluster run after every other one, so that no
    session-long connection (a worker's, an in-process app's pool) meets the restart."""
    items.sort(key=lambda item: item.get_closest_marker("disruptive") is not None)


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="sdi-tests-") as tmp:
        yield Path(tmp)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _drop_abandoned_test_databases(cluster) -> None:
    """Drop test databases whose pytest process (its pid is in the name) is gone."""
    with cluster.connect() as conn:
        names = [
            n
            for (n,) in conn.execute(
                "SELECT datname FROM pg_database WHERE datname ~ '^sdi_test_[0-9]+$'"
            )
        ]
    for name in names:
        if not _alive(int(name.rsplit("_", 1)[1])):
            cluster.drop_database(name)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh, empty test database with PostGIS; its URL becomes SDI_DATABASE_URL."""
    url = os.environ.get("SDI_TEST_DATABASE_URL")
    if url:
        yield url
        return
    from sdi.db import LocalCluster

    get_settings.cache_clear()
    cluster = LocalCluster(get_settings())
    cluster.start()
    _drop_abandoned_test_databases(cluster)
    cluster.ensure_database(TEST_DB)
    yield cluster.url(TEST_DB)
    cluster.drop_database(TEST_DB)


@pytest.fixture(scope="session")
def settings(database_url: str, workdir: Path) -> Iterator[Settings]:
    """Settings pointing every part of the product at the test database and folders."""
    overrides = {
        "SDI_DATABASE_URL": database_url,
        "SDI_STATE_DIR": str(workdir / "state"),
        "SDI_SOURCE_DIR": str(workdir / "samples"),
        "SDI_PORT": str(free_port()),
        # a killed worker is found dead within seconds (tests/api/test_jobs.py)
        "SDI_WORKER_STALLED_SECONDS": "4",
        # the suite's many requests come from one address: rate limits are tested on a server
        # of their own (tests/api/test_jobs.py), not on the shared one
        "SDI_RATE_LIMIT_ANONYMOUS": "0",
        "SDI_RATE_LIMIT_KEY": "0",
    }
    with sdi_settings(**overrides) as settings:
        yield settings


@pytest.fixture(scope="session")
def migrated(settings: Settings) -> str:
    from sdi.db.migrate import upgrade

    upgrade(settings.database_url, settings)
    return settings.database_url


@pytest.fixture(scope="session")
def manifest(settings: Settings) -> dict:
    """The sample deliveries of four cities, generated once per session."""
    from sdi.samples import generate

    return generate(settings.source_dir, scale=SAMPLE_SCALE)


@pytest.fixture(scope="session")
def loaded(migrated: str, manifest: dict, settings: Settings) -> dict:
    """Every job in etl/jobs/ run once against the samples; job name → RunResult."""
    from sdi.etl.runner import run_job
    from sdi.etl.spec import discover_jobs, load_job

    return {
        name: run_job(load_job(path, settings), migrated, settings=settings)
        for name, path in discover_jobs(settings).items()
    }


@pytest.fixture()
def db(migrated: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(migrated, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def server(loaded: dict, settings: Settings) -> Iterator[str]:
    """The OGC API, started like `sdi serve start` on a free port, with its job worker (`sdi
    worker`, SDI_SERVE_WORKER); yields its base URL. Both are stopped at the end."""
    from sdi.serve import Server

    process = Server(settings)
    process.start()
    try:
        yield settings.server_url
    finally:
        process.stop(quiet=True)


@pytest.fixture(scope="session")
def api(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=60) as client:
        yield client


def manifest_rows(manifest: dict, relative_path: str) -> int:
    return manifest["files"][relative_path]["rows"]


def read_manifest(settings: Settings) -> dict:
    return json.loads((settings.source_dir / "manifest.json").read_text())


def run_sdi(*args: str) -> subprocess.CompletedProcess:
    """The real ``sdi`` command in a child process, with the test settings (the SDI_* variables
    the settings fixture sets), as an operator would run it."""
    return subprocess.run(
        [sys.executable, "-m", "sdi", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
        check=False,
    )


__all__ = ["PROJECT_DIR", "TEST_DATA", "free_port", "manifest_rows", "read_manifest", "run_sdi"]
