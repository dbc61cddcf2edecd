"""Past one machine: two API instances behind HAProxy over a primary and a streaming replica.

Reads go to the replica, writes to the primary, a client reads its own write; a lagging
replica is skipped; and a read load that loses an instance and then the replica midway
counts no failed read, end to end through the balancer. Everything started here (the
replica cluster, the instances, HAProxy) is stopped at the end, also on failure.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from sdi.db.replica import Replica, with_port
from sdi.db.roles import role_url
from sdi.keys import create_key
from sdi.serve import Balancer, Server
from sdi.settings import Settings
from tests.support.api import bbox_around
from tests.support.environment import sdi_settings
from tests.support.replicas import free_ports, local_primary, replica_of

pytestmark = pytest.mark.disruptive  # adding a replica restarts a primary at wal_level=minimal

MAX_LAG = 2.0
INCIDENTS = "/collections/incidents/items"


class Fleet:
    def __init__(self, server: Server, replica: Replica, replica_url: str, url: str) -> None:
        self.server = server
        self.replica = replica
        self.replica_url = replica_url  # the test database on the replica, as its owner
        self.url = url


@pytest.fixture(scope="module")
def fleet(loaded: dict, settings: Settings, database_url: str, workdir: Path) -> Iterator[Fleet]:
    primary = local_primary(database_url)
    with replica_of(primary, database_url) as (replica, replica_url):
        base = free_ports(3)  # the balancer, then the two instances
        api = with_port(role_url(settings, "api"), replica.port)
        env = {
            "SDI_PORT": str(base),
            "SDI_PUBLIC_URL": f"http://127.0.0.1:{base}",
            "SDI_STATE_DIR": str(workdir / "state-fleet"),
            "SDI_WORKERS": "1",
            "SDI_SERVE_WORKER": "false",
            "SDI_INSTANCES": "2",
            "SDI_READ_DATABASE_URLS": api,
            "SDI_REPLICA_MAX_LAG_S": str(MAX_LAG),
            "SDI_REPLICA_CHECK_INTERVAL_S": "0.25",
        }
        with sdi_settings(**env) as fleet_settings:
            server = Server(fleet_settings)
            try:
                server.start()
                yield Fleet(server, replica, replica_url, f"http://127.0.0.1:{base}")
            finally:
                server.stop(quiet=True)


@pytest.fixture(scope="module")
def keys(fleet: Fleet, settings: Settings) -> dict[str, str]:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        _, writer = create_key(conn, "operations", "scale-out: incidents", writes=["incidents"])
        _, admin = create_key(conn, "*", "scale-out: reads every collection")
    return {"writer": writer, "admin": admin}


def wait_for(predicate, timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def replica_state(fleet: Fleet) -> str | None:
    """The replica's state as every live instance sees it; None while they disagree."""
    seen = set()
    for instance in fleet.server.instances():
        if instance.pid() is None:
            continue
        own = f"http://127.0.0.1:{instance.port}/healthz"
        body = httpx.get(own, timeout=5).json()
        seen.add((body.get("replicas") or {}).get("r1", {}).get("state"))
    return seen.pop() if len(seen) == 1 else None


def test_the_balancer_config_retries_only_idempotent_requests(fleet: Fleet) -> None:
    config = Balancer(fleet.server.settings, fleet.server.instances()).config()
    assert "retry-on conn-failure empty-response response-timeout 502 503 504" in config
    assert "option redispatch" in config
    assert "http-request disable-l7-retry if !METH_GET !METH_OPTIONS" in config
    assert config.count("    server i") == 2 and "option httpchk GET /healthz" in config
    status = fleet.server.status()
    assert status.startswith(f"running at {fleet.url}/ (HAProxy pid"), status
    assert " i1 pid " in status and " i2 pid " in status


def test_each_instance_reports_itself_and_the_replica(fleet: Fleet) -> None:
    wait_for(lambda: replica_state(fleet) == "ok", what="the replica to be ok")
    for instance in fleet.server.instances():
        own = f"http://127.0.0.1:{instance.port}"
        health = httpx.get(f"{own}/healthz", timeout=5).json()
        assert health["instance"] == instance.name
        assert health["replicas"]["r1"]["state"] == "ok", health
        metrics = httpx.get(f"{own}/metrics", timeout=5).text
        assert f'sdi_instance_info{{instance="{instance.name}"}} 1' in metrics
        assert f'sdi_replica_up{{instance="{instance.name}",replica="r1"}} 1' in metrics
        assert f'sdi_replica_lag_seconds{{instance="{instance.name}",replica="r1"}}' in metrics


def test_reads_go_to_the_replica_and_a_writer_reads_its_own_write(
    fleet: Fleet, keys: dict[str, str], loaded: dict, settings: Settings
) -> None:
    with psycopg.connect(settings.database_url) as conn:
        lon, lat = conn.execute(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM "
            "admin.communes_current WHERE admin_vintage = '2025' ORDER BY commune_code "
            "LIMIT 1) c"
        ).fetchone()
    report = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": {"category": "fallen_tree", "description": "scale-out test"},
    }
    wait_for(lambda: replica_state(fleet) == "ok", what="the replica to be ok")
    with psycopg.connect(fleet.replica_url, autocommit=True) as standby:
        standby.execute("SELECT pg_wal_replay_pause()")  # the replica stops here
        try:
            with httpx.Client(base_url=fleet.url, timeout=30) as writer:
                made = writer.post(
                    INCIDENTS,
                    json=report,
                    headers={"X-API-Key": keys["writer"], "Content-Type": "application/geo+json"},
                )
                assert made.status_code == 201, made.text
                assert made.headers["sdi-lsn"] and "sdi_lsn=" in made.headers["set-cookie"]
                item = made.headers["location"].split("?")[0].split("/collections", 1)[1]
                read = {"X-API-Key": keys["admin"]}
                # Another client, without the cookie: the paused replica answers, it has not
                # seen the report yet.
                stranger = httpx.get(f"{fleet.url}/collections{item}?f=json", headers=read)
                assert stranger.status_code == 404, stranger.text
                # The writer, with its cookie: the replica is behind it, so the primary reads.
                own = writer.get(f"/collections{item}?f=json", headers=read)
                assert own.status_code == 200, own.text
                # So does anyone who names the position in the header.
                named = httpx.get(
                    f"{fleet.url}/collections{item}?f=json",
                    headers={**read, "SDI-LSN": made.headers["sdi-lsn"]},
                )
                assert named.status_code == 200, named.text
            # Further behind than SDI_REPLICA_MAX_LAG_S: skipped, the primary serves everyone.
            wait_for(
                lambda: replica_state(fleet) == "lagging",
                timeout=MAX_LAG + 10,
                what="the paused replica to be reported lagging",
            )
            later = httpx.get(f"{fleet.url}/collections{item}?f=json", headers=read)
            assert later.status_code == 200, later.text
            health = httpx.get(f"{fleet.url}/healthz", timeout=5).json()
            assert health["status"] == "ok" and health["replicas"]["r1"]["lag_seconds"] > MAX_LAG
        finally:
            standby.execute("SELECT pg_wal_replay_resume()")
    wait_for(lambda: replica_state(fleet) == "ok", what="the replica to catch up")


def replica_reads(replica_url: str) -> int:
    """Transactions the test database has committed on the replica (reads, there)."""
    with psycopg.connect(replica_url, autocommit=True, connect_timeout=2) as conn:
        return conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()[0]


def test_a_read_load_survives_losing_an_instance_then_the_replica(
    fleet: Fleet, db: psycopg.Connection
) -> None:
    wait_for(lambda: replica_state(fleet) == "ok", what="the replica to be ok")
    west, south, east, north = bbox_around(db, "land.parcels", half_width=0.002)
    dense = f"/collections/parcels/items?f=json&limit=100&bbox={west},{south},{east},{north}"
    ids = [f["id"] for f in httpx.get(fleet.url + dense, timeout=30).json()["features"][:10]]
    assert ids
    # the vector tile (zoom 16) holding the dense box's centre: tiles read the replica too
    lon, lat = (west + east) / 2, (south + north) / 2
    n = 2**16
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    paths = [
        dense,
        f"/collections/parcels/tiles/WebMercatorQuad/16/{y}/{x}",
        f"/collections/buildings/items?f=json&limit=50&bbox={west},{south},{east},{north}",
        *(f"/collections/parcels/items/{key}?f=json" for key in ids),
    ]
    for path in paths:  # they all answer before the load starts
        assert httpx.get(fleet.url + path, timeout=30).status_code == 200, path

    total, threads = 360, 4
    kill_at, stop_replica_at = total // 3, 2 * total // 3
    counter = iter(range(total))
    lock = threading.Lock()
    failures: list[str] = []
    statuses: dict[int, int] = {}
    events: dict[str, object] = {}
    before = replica_reads(fleet.replica_url)

    def kill_instance() -> None:
        victim = fleet.server.instances()[0]
        pid = victim.pid()
        assert pid is not None
        os.killpg(pid, signal.SIGKILL)  # the uvicorn supervisor and its worker, at once
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)  # reaped: stop() at the end finds it gone
        events["killed"] = victim.name

    def stop_replica() -> None:
        events["replica_reads"] = replica_reads(fleet.replica_url) - before
        fleet.replica.stop()
        events["replica_stopped"] = True

    def reader(number: int) -> None:
        with httpx.Client(base_url=fleet.url, timeout=30) as client:
            while True:
                with lock:
                    index = next(counter, None)
                if index is None:
                    return
                if index == kill_at:
                    kill_instance()
                elif index == stop_replica_at:
                    threading.Thread(target=stop_replica).start()
                path = paths[(index + number) % len(paths)]
                try:
                    response = client.get(path)
                except httpx.HTTPError as exc:
                    with lock:
                        failures.append(f"{index} {path}: {exc!r}")
                    continue
                with lock:
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                    if response.status_code != 200:
                        failures.append(f"{index} {path}: {response.status_code}")

    workers = [threading.Thread(target=reader, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    wait_for(lambda: events.get("replica_stopped") is True, what="the replica to stop")

    assert events.get("killed"), "the instance was not killed"
    assert sum(statuses.values()) == total, statuses
    assert failures == [], f"{len(failures)} failed reads: {failures[:10]}"
    # Until it stopped, the replica served the reads (a few hundred statements there).
    assert int(events["replica_reads"]) >= kill_at, events
    # Afterwards the primary serves, and /healthz says the replica is down.
    wait_for(lambda: replica_state(fleet) == "down", what="the replica reported down")


def test_what_reads_the_primary_and_what_a_replica() -> None:
    from sdi.api.replicas import begin, parse_lsn

    assert begin("GET", "/collections/parcels/items", []).write is False
    assert begin("HEAD", "/collections/parcels/items/7", []).write is False
    assert begin("POST", "/collections/incidents/items", []).write is True
    assert begin("PATCH", "/collections/incidents/items/3", []).write is True
    # the change feed's watermark is the primary's oldest running transaction
    assert begin("GET", "/collections/parcels/changes", []).write is True
    cookie = [(b"cookie", b"theme=dark; sdi_lsn=0/3000060")]
    assert begin("GET", "/", cookie).min_lsn == parse_lsn("0/3000060")
    header = [(b"sdi-lsn", b"1/A"), *cookie]
    assert begin("GET", "/", header).min_lsn == (1 << 32) + 10
    assert begin("GET", "/", [(b"cookie", b"sdi_lsn=garbage")]).min_lsn is None
