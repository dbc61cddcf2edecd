"""The job system and bounded work, over HTTP on real servers, a real worker and PostgreSQL.

Two servers share the test database: the session's (with its `sdi worker`), and a second one
started here with small limits (one worker process, no job worker of its own) — so a job made
through one is read through the other, and survives the other's restart. Jobs are made to
block where needed by holding a lock on a table the exposure reads, never by mocking.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from sdi.keys import create_key
from sdi.serve import Server, Worker
from sdi.settings import get_settings
from tests.conftest import free_port, run_sdi
from tests.support.environment import sdi_settings

EXECUTE = "/processes/exposure/execution"
GAUGE = "G-HL-01"
SMALL = {
    "SDI_SERVE_WORKER": "false",
    "SDI_WORKERS": "1",
    "SDI_MAX_BODY_BYTES": "100000",
    "SDI_PROCESS_MAX_VERTICES": "1000",
    "SDI_PROCESS_CONCURRENCY": "1",
    "SDI_RATE_LIMIT_ANONYMOUS": "30",
    "SDI_RATE_LIMIT_KEY": "600",
}


@pytest.fixture(scope="module")
def second(server: str, workdir) -> Iterator[tuple[Server, str, dict[str, str]]]:
    """A second server (small limits) over the same database; (server, url, its env)."""
    env = {**SMALL, "SDI_PORT": str(free_port()), "SDI_STATE_DIR": str(workdir / "state-2")}
    with sdi_settings(**env) as settings:
        process = Server(settings)
        process.start()
    try:
        yield process, settings.server_url, env
    finally:
        process.stop(quiet=True)


@pytest.fixture(scope="module")
def keys(server: str, settings) -> dict[str, str]:
    with psycopg.connect(settings.database_url) as conn:
        _, planning = create_key(conn, "planning", "job tests: planning")
        _, construction = create_key(conn, "construction", "job tests: construction")
        _, flood = create_key(conn, "construction", "job tests: rate limited")
        _, writer = create_key(conn, "operations", "job tests: incidents", writes=["incidents"])
    return {"planning": planning, "construction": construction, "rated": flood, "writer": writer}


@pytest.fixture(scope="module")
def level(loaded, migrated) -> float:
    with psycopg.connect(migrated) as conn:
        return conn.execute(
            "SELECT water_level_m FROM hazard.warnings_current WHERE gauge_code = %s", (GAUGE,)
        ).fetchone()[0]


def _start(url: str, key: str, inputs: dict) -> str:
    response = httpx.post(
        url + EXECUTE,
        json={"inputs": inputs},
        headers={"X-API-Key": key, "Prefer": "respond-async"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()["jobID"]


def _status(url: str, job_id: str, key: str) -> httpx.Response:
    return httpx.get(f"{url}/jobs/{job_id}", params={"f": "json"}, headers={"X-API-Key": key})


def _wait(url: str, job_id: str, key: str, until=("successful", "failed"), timeout=60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = _status(url, job_id, key).json()
        if status["status"] in until:
            return status
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} not {until} within {timeout} s: {status}")


class _TableLock:
    """ACCESS EXCLUSIVE on the buildings table: any exposure computation waits on it."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __enter__(self) -> _TableLock:
        self.conn = psycopg.connect(self.url)
        self.conn.execute("LOCK TABLE construction.buildings IN ACCESS EXCLUSIVE MODE")
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.rollback()
        self.conn.close()


def test_a_job_is_seen_from_another_server_and_survives_its_restart(
    server, second, keys, level
) -> None:
    process, other, env = second
    job_id = _start(other, keys["planning"], {"gauge": GAUGE, "water_level_m": level})
    # the second server has no worker: the session's worker (another process) runs it
    done = _wait(server, job_id, keys["planning"])
    assert done["status"] == "successful"
    with sdi_settings(**env):
        process.stop(quiet=True)
        process.start()
    for url in (server, other):
        result = httpx.get(
            f"{url}/jobs/{job_id}/results",
            params={"f": "json"},
            headers={"X-API-Key": keys["planning"]},
        )
        assert result.status_code == 200, result.text
        assert result.json()["properties"]["level_label"] == "II"
        # another key does not see it on either server
        assert _status(url, job_id, keys["construction"]).status_code == 404
    # a synchronous run leaves no job behind, and points to none
    sync = httpx.post(server + EXECUTE, json={"inputs": {"gauge": GAUGE, "water_level_m": level}})
    assert sync.status_code == 200 and "location" not in sync.headers
    with psycopg.connect(get_settings().database_url) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM jobs.process_jobs WHERE created > now() - interval '5 s'"
        ).fetchone()
    assert count == 0


def test_a_killed_workers_job_ends_failed_not_lost_nor_run_twice(
    server, settings, keys, level
) -> None:
    worker = Worker(settings)
    pid = worker.pid()
    assert pid, "the session server starts a job worker"
    with _TableLock(settings.database_url):
        job_id = _start(server, keys["planning"], {"gauge": GAUGE, "water_level_m": level + 0.01})
        assert _wait(server, job_id, keys["planning"], until=("running",))["status"] == "running"
        os.killpg(pid, signal.SIGKILL)
        for _ in range(50):
            if _dead(pid):
                break
            time.sleep(0.1)
    # its heartbeat stops; after SDI_WORKER_STALLED_SECONDS the next worker fails the job
    time.sleep(settings.worker_stalled_seconds + 1.5)
    worker.pid_file.unlink(missing_ok=True)
    worker.start()
    failed = _wait(server, job_id, keys["planning"], timeout=90)
    assert failed["status"] == "failed"
    assert "worker running this job stopped" in failed["message"]
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute(
            "SELECT p.result IS NULL, q.status::text FROM jobs.process_jobs p "
            "JOIN jobs.procrastinate_jobs q ON q.id = p.queue_job_id WHERE p.job_id = %s",
            (job_id,),
        ).fetchone()
    assert row == (True, "failed")  # not queued again: it will not run a second time
    # the new worker runs new jobs
    again = _start(server, keys["planning"], {"gauge": GAUGE, "water_level_m": level})
    assert _wait(server, again, keys["planning"])["status"] == "successful"


def _dead(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_finished_jobs_past_the_retention_are_purged(server, settings, keys, level) -> None:
    old = _start(server, keys["planning"], {"gauge": GAUGE, "water_level_m": level})
    recent = _start(server, keys["planning"], {"gauge": GAUGE, "water_level_m": level - 0.01})
    for job_id in (old, recent):
        assert _wait(server, job_id, keys["planning"])["status"] == "successful"
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(
            "UPDATE jobs.process_jobs SET finished = now() - interval '30 days' WHERE job_id = %s",
            (old,),
        )
    done = run_sdi("worker", "--once", "--queue", "housekeeping")
    assert done.returncode == 0, done.stderr
    assert _status(server, old, keys["planning"]).status_code == 404
    assert _status(server, recent, keys["planning"]).status_code == 200
    with psycopg.connect(settings.database_url) as conn:
        assert not conn.execute(
            "SELECT 1 FROM jobs.process_jobs WHERE job_id = %s", (old,)
        ).fetchone()


def test_job_files_are_private(server, settings, keys, level) -> None:
    """Results live in PostgreSQL; what the worker writes on disk is its owner's only."""
    job_id = _start(server, keys["planning"], {"gauge": GAUGE, "water_level_m": level})
    _wait(server, job_id, keys["planning"])
    run = settings.state_dir / "server"
    assert run.stat().st_mode & 0o777 == 0o700
    for name in ("worker.log", "worker.pid"):
        assert (run / name).stat().st_mode & 0o777 == 0o600, name
    leaked = [p for p in settings.state_dir.rglob("*") if job_id in p.name]
    assert not leaked


def test_bodies_over_the_limit_are_a_413_naming_it(second, keys) -> None:
    _, url, _ = second
    big = {"inputs": {"gauge": GAUGE, "water_level_m": 1, "pad": "x" * 120_000}}
    response = httpx.post(url + EXECUTE, json=big)
    assert response.status_code == 413
    assert "100,000 bytes" in response.json()["description"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"inputs": {"pad": "'
        for _ in range(30):
            yield b"y" * 5000
        yield b'"}}'

    chunked = httpx.post(url + EXECUTE, content=chunks(), headers={"X-API-Key": keys["rated"]})
    assert chunked.status_code == 413 and "SDI_MAX_BODY_BYTES" in chunked.text
    # every route, not only processes
    other = httpx.post(
        url + "/collections/incidents/items",
        content=b"{" + b" " * 150_000 + b"}",
        headers={"Content-Type": "application/geo+json", "X-API-Key": keys["writer"]},
    )
    assert other.status_code == 413, other.text


def test_geometries_over_the_vertex_limit_are_a_400_naming_it(second) -> None:
    _, url, _ = second
    ring = _circle(107.05, 20.95, 0.01, 1500)
    response = httpx.post(
        url + EXECUTE, json={"inputs": {"area": {"type": "Polygon", "coordinates": [ring]}}}
    )
    assert response.status_code == 400, response.text
    assert "1,000 vertices" in response.json()["description"]
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.9")) as client:
        nested = client.post(
            url + EXECUTE,
            content=b'{"inputs": ' + b"[" * 40_000 + b"]" * 40_000 + b"}",
            headers={"Content-Type": "application/json"},
        )
    assert nested.status_code == 400, nested.text


def test_process_executions_beyond_the_limit_are_a_429_with_retry_after(
    second, settings, level
) -> None:
    _, url, _ = second
    answers: list[httpx.Response] = []
    body = {"inputs": {"gauge": GAUGE, "water_level_m": level}}
    first = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.5"), timeout=60)
    running = threading.Thread(target=lambda: answers.append(first.post(url + EXECUTE, json=body)))
    with _TableLock(settings.database_url):
        running.start()
        time.sleep(1.0)  # the first execution now waits on the lock, holding its slot
        with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.6")) as c:
            refused = c.post(url + EXECUTE, json=body)
            health = c.get(url + "/healthz")
    running.join(60)
    first.close()
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["retry-after"]) >= 1
    assert "SDI_PROCESS_CONCURRENCY" in refused.json()["description"]
    assert health.status_code == 200
    assert answers and answers[0].status_code == 200


def test_rate_limits_per_address_and_per_key_are_a_429_with_retry_after(second, keys) -> None:
    _, url, _ = second
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.7")) as client:
        statuses = [client.get(url + "/conformance", params={"f": "json"}) for _ in range(12)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited and [r.status_code for r in statuses[:5]] == [200] * 5  # burst: 30/6
    assert int(limited[0].headers["retry-after"]) >= 1
    assert "30 requests a minute" in limited[0].json()["description"]
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.8")) as other:
        assert other.get(url + "/conformance", params={"f": "json"}).status_code == 200
    headers = {"X-API-Key": keys["rated"]}
    with httpx.Client(headers=headers) as keyed:
        statuses = [keyed.get(url + "/conformance", params={"f": "json"}) for _ in range(130)]
    assert 429 in [r.status_code for r in statuses]
    assert all(r.status_code in (200, 429) for r in statuses)


def _circle(lon: float, lat: float, radius: float, n: int) -> list[list[float]]:
    ring = [
        [
            round(lon + radius * math.cos(2 * math.pi * i / n), 7),
            round(lat + radius * math.sin(2 * math.pi * i / n), 7),
        ]
        for i in range(n)
    ]
    return [*ring, ring[0]]


@pytest.mark.slow
def test_health_answers_quickly_while_16_maximal_executions_run(server, settings) -> None:
    limit = settings.process_max_vertices
    area = {"type": "Polygon", "coordinates": [_circle(107.08, 20.96, 0.06, limit - 1)]}
    answers: list[int] = []
    lock = threading.Lock()

    def flood(i: int) -> None:
        transport = httpx.HTTPTransport(local_address=f"127.0.1.{i + 1}")
        with httpx.Client(transport=transport, timeout=120) as client:
            status = client.post(server + EXECUTE, json={"inputs": {"area": area}}).status_code
        with lock:
            answers.append(status)

    threads = [threading.Thread(target=flood, args=(i,)) for i in range(16)]
    assert httpx.get(server + "/healthz").status_code == 200  # connections warm, as in service
    for thread in threads:
        thread.start()
    timings = []
    with httpx.Client(timeout=10) as client:
        while any(t.is_alive() for t in threads):
            started = time.monotonic()
            health = client.get(server + "/healthz")
            timings.append(time.monotonic() - started)
            assert health.status_code == 200, health.text
            time.sleep(0.05)
    for thread in threads:
        thread.join()
    assert len(answers) == 16 and 200 in answers
    assert set(answers) <= {200, 429}, answers  # never a 5xx
    # The bound is on the 95th percentile (2 cores shared with other test runs: a single
    # request may wait for a CPU); before the process pool and limits, /healthz answered 503.
    timings.sort()
    assert timings[int(len(timings) * 0.95)] < 1.0, timings[-10:]
    assert timings[-1] < 3.0, timings[-10:]


def _queue_job(database_url: str, queue_job_id: int) -> tuple[str, int]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT status::text, attempts FROM jobs.procrastinate_jobs WHERE id = %s",
            (queue_job_id,),
        ).fetchone()


def test_a_queued_etl_run_goes_through_the_runner_and_waits_for_the_jobs_lock(
    server, settings
) -> None:
    import hashlib

    from sdi.jobs.queue import defer_etl_run, get_app

    job = "utility_wifi_hotspots"
    queued = defer_etl_run(job, force=True)
    deadline = time.monotonic() + 120
    while _queue_job(settings.database_url, queued)[0] in ("todo", "doing"):
        assert time.monotonic() < deadline, "the ETL run was not done"
        time.sleep(0.3)
    assert _queue_job(settings.database_url, queued)[0] == "succeeded"
    with psycopg.connect(settings.database_url) as conn:
        status, options = conn.execute(
            "SELECT status, options FROM etl.runs WHERE job = %s ORDER BY run_id DESC LIMIT 1",
            (job,),
        ).fetchone()
    assert status == "succeeded" and options["force"] is True

    # someone runs the job from a shell: it holds the ETL's advisory lock for the job
    key = int.from_bytes(hashlib.sha256(f"sdi.etl:{job}".encode()).digest()[:8], "big", signed=True)
    with psycopg.connect(settings.database_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (key,))
        waiting = defer_etl_run(job, force=True)
        deadline = time.monotonic() + 60
        while _queue_job(settings.database_url, waiting) != ("todo", 1):
            assert time.monotonic() < deadline, _queue_job(settings.database_url, waiting)
            time.sleep(0.3)
        holder.execute("SELECT pg_advisory_unlock(%s)", (key,))
    # retried later (30 s), never run while the lock was held; not left behind by this test
    assert get_app().job_manager.cancel_job_by_id(waiting)


def _children(pid: int) -> set[int]:
    found = set()
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                with open(f"/proc/{stat}/stat", encoding="ascii") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == pid:
                found.add(int(stat))
    return found


@pytest.mark.parametrize(
    "recycling",
    [
        {"SDI_SERVER_MAX_REQUESTS": "25", "SDI_SERVER_MAX_REQUESTS_JITTER": "40"},
        {"SDI_SERVER_MAX_REQUESTS": "0", "SDI_SERVER_MAX_MEMORY_MB": "40"},
    ],
    ids=["after-n-requests", "above-memory-ceiling"],
)
def test_server_workers_are_replaced_and_the_service_keeps_answering(
    server, workdir, recycling
) -> None:
    env = {
        "SDI_SERVE_WORKER": "false",
        "SDI_WORKERS": "2",
        "SDI_PORT": str(free_port()),
        "SDI_STATE_DIR": str(workdir / f"state-{recycling['SDI_SERVER_MAX_REQUESTS']}"),
        **recycling,
    }
    with sdi_settings(**env) as settings:
        process = Server(settings)
        process.start()
    try:
        pid = process.pid()
        assert pid
        before = _children(pid)
        statuses: list[int] = []
        errors: list[str] = []
        after = before
        deadline = time.monotonic() + 90
        # one kept-alive connection, as a browser or QGIS keeps one: the worker being
        # replaced drains it (Connection: close), it is never cut under a request
        with httpx.Client(timeout=10) as client:
            while time.monotonic() < deadline:
                try:
                    statuses.append(
                        client.get(settings.server_url + "/conformance?f=json").status_code
                    )
                except httpx.TransportError as exc:
                    errors.append(repr(exc))
                if len(statuses) % 20 == 0:
                    after = _children(pid)
                    if before - after and len(after) >= len(before) and len(statuses) >= 150:
                        break
        assert not errors, errors[:3]
        assert set(statuses) == {200}, statuses
        assert before - after, "no worker was replaced"
        assert len(after) >= len(before)  # and they were replaced, not lost
    finally:
        with sdi_settings(**env):
            process.stop(quiet=True)


def test_rate_limits_hold_across_two_server_worker_processes(server, workdir, migrated) -> None:
    """One client's requests spread over two worker processes (a new connection each): the
    window's budget (120 a minute: 20 per 10-s window) holds for the two together, not for
    each — both processes counted in auth.rate_counts."""
    env = {
        "SDI_SERVE_WORKER": "false",
        "SDI_WORKERS": "2",
        "SDI_PORT": str(free_port()),
        "SDI_STATE_DIR": str(workdir / "state-shared-limits"),
        "SDI_RATE_LIMIT_ANONYMOUS": "120",
    }
    with psycopg.connect(migrated) as conn:
        started = conn.execute("SELECT now()").fetchone()[0]
    with sdi_settings(**env) as settings:
        process = Server(settings)
        process.start()
    try:
        url = settings.server_url + "/conformance?f=json"
        transport = httpx.HTTPTransport(local_address="127.0.0.11")
        for _ in range(4):  # both workers up (and connected to the database) first
            with httpx.Client(transport=transport) as warm:
                warm.get(settings.server_url + "/healthz")
        time.sleep(10 - time.time() % 10 + 0.2)  # the start of a window: all in one window
        statuses = []
        for _ in range(60):
            with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.12")) as one:
                statuses.append(one.get(url).status_code)
        assert set(statuses) <= {200, 429}, statuses
        assert statuses.count(200) == 20, statuses
        with psycopg.connect(migrated, autocommit=True) as conn:
            counted = conn.execute(
                "SELECT sum(hits) FROM auth.rate_counts WHERE client = 'ip:127.0.0.12/120'"
            ).fetchone()[0]
            processes = conn.execute(
                "SELECT count(DISTINCT pid) FROM pg_stat_activity "
                "WHERE application_name = 'sdi-rate-limits' AND datname = current_database() "
                "AND backend_start > %s",
                (started,),
            ).fetchone()[0]
        assert counted >= 20
        assert processes >= 2, "the requests did not reach both worker processes"
    finally:
        with sdi_settings(**env):
            process.stop(quiet=True)
