"""Shared pieces of the ETL benchmarks: cached sample data, the bench database, the job spec,
timed child processes (wall clock and peak RSS) and the pause between measurements."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import yaml
from psycopg.conninfo import conninfo_to_dict, make_conninfo

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
RESULTS = HERE / "results"
DATA = RESULTS / "data"
BENCH_DB = "sdi_bench"
JOB = "bench_parcels"
PARCELS_PER_SCALE = 24_000  # sdi.samples: 6,000 parcels per city × 4 cities at scale 1


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- data ---------------------------------------------------------------------------------
def scale_for(parcels: int) -> float:
    """The generator scale for about ``parcels`` parcels (1,000,000 → 41.67 as documented)."""
    return max(round(parcels / PARCELS_PER_SCALE, 2), 0.01)


def sample_data(parcels: int) -> Path:
    """The sample deliveries with ~``parcels`` parcels as one GeoPackage, generated once."""
    target = DATA / f"parcels-{parcels}"
    if (target / "manifest.json").exists() and (target / "land/parcels.gpkg").exists():
        return target
    from sdi.samples import generate

    DATA.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"parcels-{parcels}.", dir=DATA))
    say(f"generating {parcels:,} parcels (scale {scale_for(parcels)}) into {target} …")
    start = time.perf_counter()
    generate(scratch, scale=scale_for(parcels), parcels_format="gpkg")
    if target.exists():
        shutil.rmtree(target)
    scratch.rename(target)
    say(f"generated in {time.perf_counter() - start:.0f} s")
    return target


def parcels_gpkg(data_dir: Path) -> Path:
    return data_dir / "land" / "parcels.gpkg"


# -- database -----------------------------------------------------------------------------
def bench_database(url: str | None = None, name: str = BENCH_DB) -> str:
    """URL of the migrated bench database: ``url`` or ``name`` on the local cluster."""
    from sdi.db import ClusterError, LocalCluster
    from sdi.db.migrate import upgrade

    if url is None:
        cluster = LocalCluster()
        for attempt in range(4):  # others share the cluster: it may be restarting just now
            try:
                cluster.start()
                break
            except ClusterError:
                if attempt == 3:
                    raise
                time.sleep(5)
        cluster.ensure_database(name)
        url = cluster.url(name)
    upgrade(url)
    return url


def libpq(url: str) -> tuple[str, dict[str, str]]:
    """``PG:`` connection string for GDAL without the password, and the env carrying it."""
    params = conninfo_to_dict(url)
    password = params.pop("password", None)
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = password
    return "PG:" + make_conninfo(**params), env


def pause(url: str) -> float:
    """Same starting point for every measurement: VACUUM ANALYZE and CHECKPOINT."""
    start = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")
    return time.perf_counter() - start


def reset_target(url: str, table: str = "land.parcels") -> None:
    """Empty the target and forget all runs: the next run is a real first load.

    The bench database is ours alone: every table referring to a run goes too (CASCADE).
    """
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {table}, etl.runs CASCADE")


# -- job spec -----------------------------------------------------------------------------
def write_job(jobs_dir: Path) -> Path:
    """``etl/jobs/land_parcels.yml`` with its source pointed at the UTF-8 GeoPackage."""
    spec = yaml.safe_load((PROJECT / "etl/jobs/land_parcels.yml").read_text(encoding="utf-8"))
    spec["title"] = "Cadastral parcels (benchmark: one UTF-8 GeoPackage)"
    spec["source"] = {
        "path": "land/parcels.gpkg",
        "layer": "parcels",
        "encoding": "utf-8",
        "srid": 5899,
    }
    jobs_dir.mkdir(parents=True, exist_ok=True)
    path = jobs_dir / f"{JOB}.yml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def sdi_env(url: str, data_dir: Path, jobs_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SDI_DATABASE_URL=url,
        SDI_SOURCE_DIR=str(data_dir),
        SDI_JOBS_DIR=str(jobs_dir),
        # progress bars are off without a terminal anyway; keep rich quiet and narrow
        TERM="dumb",
    )
    return env


def last_run(url: str) -> dict:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            """
            SELECT run_id, status, rows_read, added, updated, unchanged, retired, rejected,
                   repaired, extract(epoch FROM finished_at - started_at)::float8, message
            FROM etl.runs WHERE job = %s ORDER BY run_id DESC LIMIT 1
            """,
            (JOB,),
        ).fetchone()
    if row is None:
        return {}
    names = ("run_id", "status", "rows_read", "added", "updated", "unchanged", "retired")
    names += ("rejected", "repaired", "db_seconds", "message")
    return dict(zip(names, row, strict=True))


# -- timed child processes ----------------------------------------------------------------
@dataclass
class Timed:
    seconds: float
    max_rss_bytes: int
    returncode: int
    stdout: str
    stderr: str
    load_before: float  # 1-minute load average when it started: others' work skews timings
    cpu_seconds: float  # user + system CPU of the child itself (not of the database server)

    def check(self, what: str) -> Timed:
        if self.returncode != 0:
            raise RuntimeError(
                f"{what} failed with exit code {self.returncode}:\n"
                f"{self.stdout[-3000:]}\n{self.stderr[-3000:]}"
            )
        return self


# A child forked from this (large) Python process inherits its RSS high-water mark: Linux
# records the old address space's peak at exec, so wait4's ru_maxrss of every child showed
# the bench's own 1.2 GiB. A small launcher process (about 8 MiB) forks the real command and
# reports that grandchild's rusage through a pipe, so the figure is the command's own.
_LAUNCHER = """
import os, signal, sys
report, cmd = int(sys.argv[1]), sys.argv[2:]
pid = os.posix_spawnp(cmd[0], cmd, os.environ)
signal.signal(signal.SIGTERM, lambda *_: os.kill(pid, signal.SIGKILL))
_, status, usage = os.wait4(pid, 0)
os.write(report, b"%d %f" % (usage.ru_maxrss, usage.ru_utime + usage.ru_stime))
sys.exit(os.waitstatus_to_exitcode(status) % 256)
"""


def timed(
    cmd: list[str],
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
) -> Timed:
    """Run ``cmd``; wall-clock seconds and the command's own peak RSS and CPU (``wait4``).

    After ``timeout`` seconds the command is killed (exit code -9); its database session
    notices within a second (``client_connection_check_interval`` in ``PGOPTIONS``) and
    rolls back, instead of finishing a statement nobody waits for.
    """
    env = dict(os.environ if env is None else env)
    env["PGOPTIONS"] = env.get("PGOPTIONS", "") + " -c client_connection_check_interval=1000"
    load = os.getloadavg()[0]
    report_r, report_w = os.pipe()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-S", "-c", _LAUNCHER, str(report_w), *cmd],
            stdout=out,
            stderr=err,
            env=env,
            cwd=cwd,
            pass_fds=(report_w,),
        )
        os.close(report_w)
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            proc.terminate()  # the launcher kills the command with SIGKILL

        timer = threading.Timer(timeout, kill) if timeout else None
        if timer:
            timer.start()
        returncode = proc.wait()
        seconds = time.perf_counter() - start
        if timer:
            timer.cancel()
        with os.fdopen(report_r, "rb") as report:
            fields = report.read().split()
        max_rss_kib, cpu = (int(fields[0]), float(fields[1])) if fields else (0, 0.0)
        out.seek(0)
        err.seek(0)
        return Timed(
            seconds,
            max_rss_kib * 1024,  # Linux reports KiB
            -9 if killed.is_set() else returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            round(load, 2),
            round(cpu, 3),
        )


def git_state() -> dict:
    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=PROJECT, capture_output=True, text=True, timeout=20
            ).stdout
        except OSError:
            return ""

    return {
        "commit": git("rev-parse", "--short", "HEAD").strip(),
        "dirty": [line[3:] for line in git("status", "--porcelain", "--", "sdi").splitlines()],
    }
