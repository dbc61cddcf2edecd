"""A hot standby of the test session's local cluster, made and removed by a test.

Making one restarts the shared cluster when it still runs with ``wal_level=minimal``: the
tests that use it are marked ``disruptive`` (they run last).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest

from sdi.db import LocalCluster
from sdi.db.replica import Replica, add, remove, with_port
from sdi.settings import PROJECT_DIR, Settings


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive TCP ports on 127.0.0.1 that are free now."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + count > 65535:
            continue
        taken = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                taken.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in taken:
                sock.close()
        return first
    raise RuntimeError(f"no {count} consecutive free ports")


def local_primary(database_url: str) -> LocalCluster:
    """The local cluster the test database lives in (skips with SDI_TEST_DATABASE_URL)."""
    if os.environ.get("SDI_TEST_DATABASE_URL"):
        pytest.skip("replicas are made of the local cluster, not of SDI_TEST_DATABASE_URL")
    cluster = LocalCluster(Settings(database_url=None, state_dir=PROJECT_DIR / ".sdi"))
    if cluster.port != urlsplit(database_url).port or not cluster.is_running():
        pytest.skip("the test database is not in this checkout's local cluster")
    return cluster


@contextmanager
def replica_of(primary: LocalCluster, database_url: str) -> Iterator[tuple[Replica, str]]:
    """A streaming replica (own port, own folder) and the test database's URL on it; stopped
    and removed afterwards, also when the test fails."""
    name = f"t{os.getpid()}"
    remove(primary.settings, name)  # left by an earlier run killed midway
    made = None
    try:
        made = add(primary.settings, name, port=free_ports(1))
        yield made, with_port(database_url, made.port)
    finally:
        remove(primary.settings, name)
