"""The project's own PostgreSQL + PostGIS cluster, kept under ``settings.cluster_dir``.

Local, password logins over TCP only, runnable as root, every operation idempotent and safe
for concurrent callers: ``docs/internals.md`` ("The local cluster").
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from sdi.errors import DatabaseUnavailable
from sdi.settings import Settings, get_settings

MIN_MAJOR = 13
HOST = "127.0.0.1"
FALLBACK_ROOT = Path("/var/lib/sdi")
# PostgreSQL's unix socket path (directory + "/.s.PGSQL.<port>") must fit in sun_path (108 bytes).
MAX_SOCKET_PATH = 100
SERVICE_USERS = ("postgres", "sdi-postgres")

# Tuned for the project's machines (24 GB, 2 cores, SSD) and the ETL's durability guarantees:
# fsync and synchronous_commit stay on, a run's commit is on disk when it returns.
TUNING = """\
max_connections = 100
shared_buffers = 1GB
effective_cache_size = 12GB
work_mem = 64MB
maintenance_work_mem = 512MB
max_wal_size = 4GB
min_wal_size = 512MB
checkpoint_timeout = 15min
checkpoint_completion_target = 0.9
wal_compression = on
fsync = on
synchronous_commit = on
full_page_writes = on
random_page_cost = 1.1
effective_io_concurrency = 200
max_worker_processes = 4
max_parallel_workers = 2
max_parallel_workers_per_gather = 1
max_parallel_maintenance_workers = 1
jit = off
password_encryption = scram-sha-256
log_line_prefix = '%m [%p] %q%u@%d '
"""


def wal_settings(level: str) -> str:
    """WAL settings for ``SDI_DB_WAL_LEVEL``. ``minimal`` (the default): a table filled in the
    transaction that created or truncated it writes no WAL (``docs/etl-performance.md``) and
    is flushed at commit, as durable as before; but there is then no
    streaming replica or WAL archive (point-in-time recovery) of this cluster — set
    ``replica`` for those."""
    if level == "minimal":
        return "wal_level = minimal\nmax_wal_senders = 0\narchive_mode = off\n"
    return f"wal_level = {level}\n"


PG_HBA = """\
# Written by sdi (sdi/db/cluster.py): password logins (scram-sha-256) over TCP from 127.0.0.1
# only. Nothing else is accepted, not even the unix socket.
# TYPE  DATABASE  USER  ADDRESS       METHOD
host    all       all   127.0.0.1/32  scram-sha-256
"""
# Added while the cluster has local hot standbys (`sdi db replica add`, sdi/db/replica.py):
# they stream its WAL over the same loopback, with the same password logins.
PG_HBA_REPLICATION = "host    replication  all  127.0.0.1/32  scram-sha-256\n"

# What a primary with replicas needs (a minimal WAL cannot be streamed); a replica's slot
# keeps the WAL it has not received, bounded so that a replica left down cannot fill the disk
# (past it, the replica must be added again).
REPLICATION = """\
max_wal_senders = 10
max_replication_slots = 10
max_slot_wal_keep_size = 4GB
wal_keep_size = 256MB
hot_standby = on
hot_standby_feedback = on
"""

REPLICAS_DIR = "replicas"


class ClusterError(DatabaseUnavailable):
    """The local cluster could not be set up, started or reached; the message says how to fix it."""


@dataclass(frozen=True)
class ClusterStatus:
    """What ``LocalCluster.status()`` reports."""

    initialised: bool
    running: bool
    pid: int | None
    host: str
    port: int
    base_dir: Path
    data_dir: Path
    socket_dir: Path
    log_file: Path
    bindir: Path | None
    version: str | None
    run_as: str
    note: str | None


@dataclass(frozen=True)
class _Layout:
    base: Path
    note: str | None


def find_bindir() -> Path:
    """The bin directory of the highest installed PostgreSQL server (>= 13).

    Looks in ``/usr/lib/postgresql/*/bin`` (Debian, Ubuntu), then asks ``pg_config --bindir``.
    """
    candidates: list[tuple[int, Path]] = []
    for pg_ctl in Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"):
        major = pg_ctl.parent.parent.name
        if major.isdigit() and int(major) >= MIN_MAJOR and _is_server_bindir(pg_ctl.parent):
            candidates.append((int(major), pg_ctl.parent))
    if candidates:
        return max(candidates)[1]
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
            bindir = Path(out)
            if _is_server_bindir(bindir) and (_major(bindir) or 0) >= MIN_MAJOR:
                return bindir
    raise ClusterError(
        f"PostgreSQL server binaries (>= {MIN_MAJOR}) were not found: looked for "
        "/usr/lib/postgresql/*/bin/pg_ctl and `pg_config --bindir`.\n"
        "Fix: run ./dev setup (it installs postgresql and PostGIS with apt), or set "
        "SDI_DATABASE_URL to an existing PostGIS database."
    )


def _is_server_bindir(bindir: Path) -> bool:
    return all(os.access(bindir / exe, os.X_OK) for exe in ("pg_ctl", "initdb", "postgres"))


def _major(bindir: Path) -> int | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            [str(bindir / "pg_ctl"), "--version"], capture_output=True, text=True, timeout=10
        ).stdout
        match = re.search(r"(\d+)(?:\.\d+)?", out)
        if match:
            return int(match.group(1))
    return None


class LocalCluster:
    """The local cluster described by ``settings`` (``cluster_dir``, ``db_port``, ``db_user``)."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.port = self.settings.db_port
        self.host = HOST

    # ----------------------------------------------------------------------------------------
    # Where things are

    @cached_property
    def run_as(self) -> str | None:
        """The system user the server runs as when we are root; None means "as ourselves"."""
        if os.geteuid() != 0:
            return None
        data = self._layout.base / "data"
        with contextlib.suppress(OSError, KeyError):
            owner = data.stat().st_uid
            if owner != 0:
                return pwd.getpwuid(owner).pw_name
        return _service_user(create=False) or SERVICE_USERS[-1]

    @cached_property
    def _layout(self) -> _Layout:
        preferred = Path(os.path.abspath(self.settings.cluster_dir))
        if os.geteuid() != 0:
            return _Layout(preferred, None)
        digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:12]
        fallback = FALLBACK_ROOT / digest
        if (fallback / "data" / "PG_VERSION").exists():
            return _Layout(fallback, _fallback_note(preferred, fallback))
        if (preferred / "data" / "PG_VERSION").exists():
            return _Layout(preferred, None)
        user = _service_user(create=False)
        if user is None or _reachable(preferred.parent, user):
            return _Layout(preferred, None)
        return _Layout(fallback, _fallback_note(preferred, fallback))

    @property
    def base_dir(self) -> Path:
        return self._layout.base

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "log" / "postgres.log"

    @property
    def password_file(self) -> Path:
        return self.base_dir / "password"

    @property
    def socket_dir(self) -> Path:
        preferred = self.base_dir / "run"
        if len(f"{preferred}/.s.PGSQL.{self.port}") <= MAX_SOCKET_PATH:
            return preferred
        digest = hashlib.sha256(str(self.base_dir).encode()).hexdigest()[:12]
        return Path("/tmp") / f"sdi-pg-{digest}"

    @cached_property
    def bindir(self) -> Path:
        return find_bindir()

    @property
    def admin_user(self) -> str:
        """The superuser initdb created (``settings.db_user`` at the time of ``init``)."""
        with contextlib.suppress(OSError):
            name = (self.base_dir / "superuser").read_text().strip()
            if name:
                return name
        return self.settings.db_user

    # ----------------------------------------------------------------------------------------
    # State

    def is_initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def is_running(self) -> bool:
        """True when this cluster's postmaster is alive (read from its ``postmaster.pid``)."""
        return self._postmaster_pid() is not None

    def password(self) -> str:
        try:
            return self.password_file.read_text().strip()
        except FileNotFoundError:
            raise ClusterError(
                f"The local cluster is not initialised ({self.password_file} is missing).\n"
                "Fix: run `sdi db start` (or ./dev setup && ./dev sdi db start)."
            ) from None

    def url(self, dbname: str | None = None) -> str:
        """``postgresql://user:password@127.0.0.1:port/dbname`` (default ``settings.db_name``)."""
        user = quote(self.settings.db_user, safe="")
        password = quote(self.password(), safe="")
        name = quote(dbname or self.settings.db_name, safe="")
        return f"postgresql://{user}:{password}@{self.host}:{self.port}/{name}"

    def status(self) -> ClusterStatus:
        """A snapshot of the cluster; creates nothing."""
        try:
            bindir: Path | None = self.bindir
        except ClusterError:
            bindir = None
        version = None
        with contextlib.suppress(OSError):
            version = (self.data_dir / "PG_VERSION").read_text().strip()
        return ClusterStatus(
            initialised=self.is_initialised(),
            running=self.is_running(),
            pid=self._postmaster_pid(),
            host=self.host,
            port=self.port,
            base_dir=self.base_dir,
            data_dir=self.data_dir,
            socket_dir=self.socket_dir,
            log_file=self.log_file,
            bindir=bindir,
            version=version,
            run_as=self.run_as or pwd.getpwuid(os.geteuid()).pw_name,
            note=self._layout.note,
        )

    # ----------------------------------------------------------------------------------------
    # Life cycle

    def init(self) -> bool:
        """Create the cluster if it does not exist yet; returns True when it did."""
        with self._lock():
            return self._init()

    def start(self, timeout: float = 60.0) -> bool:
        """Start the cluster (initialising it first if needed) and wait until it accepts
        connections. Returns False when it was already running."""
        with self._lock():
            self._init()
            if self.is_running():
                running_port = self._running_port()
                if running_port not in (None, self.port):
                    raise ClusterError(
                        f"The local cluster is running on port {running_port}, but the settings "
                        f"say {self.port}.\nFix: `sdi db stop` with the old port "
                        f"(SDI_DB_PORT={running_port}), then `sdi db start`."
                    )
                self._wait_ready(timeout)
                return False
            self._write_config()
            self._make_dir(self.socket_dir, mode=0o700)
            self._clear_stale_pid()
            self._check_port_free()
            self._rotate_log()
            for attempt in range(5):
                proc = self._run(
                    [
                        str(self.bindir / "pg_ctl"),
                        "start",
                        "-D",
                        str(self.data_dir),
                        "-l",
                        str(self.log_file),
                        "-w",
                        "-t",
                        str(int(timeout)),
                        "-s",
                    ],
                    check=False,
                    timeout=timeout + 30,
                    new_session=True,
                )
                if proc.returncode == 0:
                    break
                # Children of a postmaster killed with -9 hold its shared memory for a moment.
                if "pre-existing shared memory block" in self._log_tail(20) and attempt < 4:
                    time.sleep(1)
                    continue
                raise self._error("PostgreSQL did not start", proc)
            self._wait_ready(timeout)
            return True

    def stop(self, timeout: float = 60.0) -> bool:
        """Stop the cluster (fast shutdown: sessions are rolled back). False if it wasn't up."""
        with self._lock():
            if not self.is_running():
                return False
            proc = self._run(
                [
                    str(self.bindir / "pg_ctl"),
                    "stop",
                    "-D",
                    str(self.data_dir),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    str(int(timeout)),
                    "-s",
                ],
                check=False,
                timeout=timeout + 30,
            )
            if proc.returncode != 0 and self.is_running():
                raise self._error("PostgreSQL did not stop", proc)
            return True

    def destroy(self) -> None:
        """Stop the cluster and delete it, data, password and logs included (for tests)."""
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)
        if self.socket_dir != self.base_dir / "run":
            shutil.rmtree(self.socket_dir, ignore_errors=True)

    # ----------------------------------------------------------------------------------------
    # Databases

    def connect(self, dbname: str = "postgres", **kwargs: object) -> psycopg.Connection:
        """A connection as the cluster's superuser (autocommit unless told otherwise)."""
        kwargs.setdefault("autocommit", True)
        kwargs.setdefault("connect_timeout", 10)
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.admin_user,
            password=self.password(),
            dbname=dbname,
            **kwargs,  # type: ignore[arg-type]
        )

    def ensure_database(self, name: str) -> None:
        """Create ``settings.db_user`` and database ``name`` if missing, with PostGIS (and
        postgis_raster when installed) in it. The cluster must be running."""
        with self._lock(), self._admin("postgres") as conn:
            user = self.settings.db_user
            if user != self.admin_user and not _exists(conn, "pg_roles", "rolname", user):
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                        sql.Identifier(user), sql.Literal(self.password())
                    )
                )
            available = {
                row[0]
                for row in conn.execute(
                    "SELECT name FROM pg_available_extensions"
                    " WHERE name IN ('postgis', 'postgis_raster')"
                )
            }
            if "postgis" not in available:
                raise ClusterError(
                    f"PostGIS is not installed for the PostgreSQL server in {self.bindir}.\n"
                    f"Fix: run ./dev setup, or apt-get install postgresql-{_major(self.bindir)}"
                    "-postgis-3"
                )
            if not _exists(conn, "pg_database", "datname", name):
                with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                    conn.execute(
                        sql.SQL("CREATE DATABASE {} OWNER {}").format(
                            sql.Identifier(name), sql.Identifier(user)
                        )
                    )
        with self._lock(), self._admin(name) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            if "postgis_raster" in available:
                conn.execute("CREATE EXTENSION IF NOT EXISTS postgis_raster")

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, disconnecting its sessions, and its API and
        ETL roles (``<name>_api``, ``<name>_etl``: sdi.db.roles)."""
        from sdi.db.roles import drop_roles

        with self._admin("postgres") as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            drop_roles(conn, name)

    # ----------------------------------------------------------------------------------------
    # Internals

    @contextlib.contextmanager
    def _admin(self, dbname: str) -> Iterator[psycopg.Connection]:
        try:
            conn = self.connect(dbname)
        except psycopg.OperationalError as exc:
            hint = "" if self.is_running() else "\nIt is not running: start it with `sdi db start`."
            raise ClusterError(
                f"Cannot connect to the local cluster at {self.host}:{self.port}: {exc}{hint}"
            ) from exc
        with conn:
            yield conn

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self._make_base()
        with open(self.base_dir / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _make_base(self) -> None:
        if os.geteuid() == 0 and self.run_as in SERVICE_USERS:
            _service_user(create=True)
        parent = self.base_dir.parent
        if not parent.exists():
            # Created world-searchable so the service user can reach the cluster below it.
            parent.mkdir(parents=True, exist_ok=True)
            parent.chmod(0o755)
        self._make_dir(self.base_dir, mode=0o700)
        self._make_dir(self.log_file.parent, mode=0o700)

    def _make_dir(self, path: Path, mode: int) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self._own(path, mode)

    def _own(self, path: Path, mode: int) -> None:
        path.chmod(mode)
        if self.run_as is not None:
            entry = pwd.getpwnam(self.run_as)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _write(self, path: Path, text: str, mode: int = 0o600) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        self._own(tmp, mode)
        tmp.replace(path)

    def _init(self) -> bool:
        if self.is_initialised():
            return False
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise ClusterError(
                f"{self.data_dir} exists but holds no PostgreSQL cluster (an interrupted init?).\n"
                f"Fix: remove it (rm -rf {self.data_dir}) and run `sdi db start` again."
            )
        if not self.password_file.exists():
            self._write(self.password_file, secrets.token_urlsafe(24) + "\n")
        user = self.settings.db_user
        proc = self._run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                user,
                f"--pwfile={self.password_file}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                f"--locale={_locale()}",
                "--data-checksums",
            ],
            check=False,
            timeout=300,
        )
        if proc.returncode != 0:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            raise self._error("initdb failed", proc, show_log=False)
        self._write(self.base_dir / "superuser", user + "\n")
        self._write(self.data_dir / "pg_hba.conf", self.hba_rules())
        conf = self.data_dir / "postgresql.conf"
        with conf.open("a") as handle:
            handle.write("\n# Settings of the sdi project (rewritten at every start).\n")
            handle.write("include_if_exists = 'sdi.conf'\n")
        self._write_config()
        return True

    # -- replication (sdi.db.replica) -----------------------------------------------------
    @property
    def replicas_dir(self) -> Path:
        """Where this cluster's local hot standbys live (one folder each)."""
        return self.base_dir / REPLICAS_DIR

    def has_replicas(self) -> bool:
        """Whether a replica exists or is being added (its folder is made first)."""
        return self.replicas_dir.is_dir() and any(
            child.is_dir() for child in self.replicas_dir.iterdir()
        )

    def wal_level(self) -> str:
        """The configured wal_level, at least ``replica`` while the cluster has replicas."""
        level = self.settings.db_wal_level
        return "replica" if level == "minimal" and self.has_replicas() else level

    def hba_rules(self) -> str:
        """pg_hba.conf: loopback password logins, and replication while replicas exist."""
        return PG_HBA + (PG_HBA_REPLICATION if self.wal_level() != "minimal" else "")

    def allow_replication(self) -> None:
        """Write the settings a replica needs and make a running cluster read them (a change
        of wal_level needs a restart: ``sdi.db.replica.add`` does it)."""
        with self._lock():
            self._write_config()
            if self.is_running():
                with self.connect() as conn:
                    conn.execute("SELECT pg_reload_conf()")

    def _replication_conf(self) -> str:
        level = self.wal_level()
        return wal_settings(level) + (REPLICATION if level != "minimal" else "")

    def _write_config(self) -> None:
        text = (
            "# Written by sdi at every `sdi db start`: edits here are lost.\n"
            f"listen_addresses = '{self.host}'\n"
            f"port = {self.port}\n"
            f"unix_socket_directories = '{self.socket_dir}'\n"
            "unix_socket_permissions = 0700\n" + TUNING + self._replication_conf()
        )
        hba, rules = self.data_dir / "pg_hba.conf", self.hba_rules()
        with contextlib.suppress(OSError):
            if hba.read_text() != rules:
                self._write(hba, rules)
        path = self.data_dir / "sdi.conf"
        with contextlib.suppress(OSError):
            if path.read_text() == text:
                return
        self._write(path, text)

    def _run(
        self,
        args: list[str],
        *,
        check: bool = True,
        timeout: float | None = None,
        new_session: bool = False,
        extra_env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        cmd = args if self.run_as is None else ["runuser", "-u", self.run_as, "--", *args]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | (extra_env or {})
        try:
            proc = subprocess.run(
                cmd,
                cwd=self.base_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                start_new_session=new_session,
            )
        except subprocess.TimeoutExpired as exc:
            raise ClusterError(
                f"{Path(args[0]).name} did not finish within {timeout:.0f}s.\n"
                f"Last lines of {self.log_file}:\n{self._log_tail()}"
            ) from exc
        if check and proc.returncode != 0:
            raise self._error(f"{Path(args[0]).name} failed", proc)
        return proc

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
            pid = int(first)
        except (OSError, ValueError):
            return None
        return pid if _is_our_postmaster(pid, self.data_dir) else None

    def _running_port(self) -> int | None:
        """The port in the running postmaster's postmaster.pid (its 4th line)."""
        try:
            return int((self.data_dir / "postmaster.pid").read_text().splitlines()[3])
        except (OSError, ValueError, IndexError):
            return None

    def _clear_stale_pid(self) -> None:
        """Remove a postmaster.pid whose process is gone or is no postmaster of ours.

        PostgreSQL removes a stale lock file itself unless its pid now belongs to another live
        process (pids are reused after a reboot), which it cannot tell from a running server.
        """
        if self._postmaster_pid() is not None:
            return
        (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
        # The socket directory is this cluster's own: with no postmaster, what is left in it
        # (socket, lock file naming a dead or not-yet-reaped pid) is stale too.
        for leftover in self.socket_dir.glob(".s.PGSQL.*"):
            leftover.unlink(missing_ok=True)

    def _check_port_free(self, wait: float = 5.0) -> None:
        # A postmaster that has just died (crash, kill -9) may hold its socket a moment longer.
        deadline = time.monotonic() + wait
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.settimeout(1)
                in_use = sock.connect_ex((self.host, self.port)) == 0
            if not in_use or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if in_use:
            raise ClusterError(
                f"Port {self.port} on {self.host} is taken by another program, so the local "
                f"cluster ({self.data_dir}) cannot start.\n"
                "Fix: stop that program (another checkout's cluster? run `sdi db stop` there), "
                "or choose another port: SDI_DB_PORT=55433 (environment or .env)."
            )

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.connect("postgres", connect_timeout=5) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline or not self.is_running():
                    raise ClusterError(
                        f"PostgreSQL at {self.host}:{self.port} does not accept connections: "
                        f"{exc}\nLast lines of {self.log_file}:\n{self._log_tail()}"
                    ) from exc
                time.sleep(0.2)

    def _rotate_log(self, limit: int = 50 * 1024 * 1024) -> None:
        with contextlib.suppress(OSError):
            if self.log_file.stat().st_size > limit:
                self.log_file.replace(self.log_file.with_suffix(".log.1"))

    def _log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no log yet)"
        return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"

    def _error(
        self, what: str, proc: subprocess.CompletedProcess[str], show_log: bool = True
    ) -> ClusterError:
        output = (proc.stdout + proc.stderr).strip()
        message = f"{what} (exit code {proc.returncode}) for the cluster in {self.data_dir}."
        if output:
            message += f"\n{output}"
        if show_log:
            message += f"\nLast lines of {self.log_file}:\n{self._log_tail()}"
        message += (
            "\nFix: read the messages above; `sdi db status` shows where everything is. "
            "Setting SDI_DATABASE_URL uses an existing PostGIS instead."
        )
        return ClusterError(message)


# --------------------------------------------------------------------------------------------
# Helpers


def _exists(conn: psycopg.Connection, table: str, column: str, value: str) -> bool:
    query = sql.SQL("SELECT 1 FROM {} WHERE {} = %s").format(
        sql.Identifier(table), sql.Identifier(column)
    )
    return conn.execute(query, (value,)).fetchone() is not None


def _service_user(create: bool) -> str | None:
    """The system user a root-started server runs as: postgres, else sdi-postgres."""
    for name in SERVICE_USERS:
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    if not create:
        return None
    name = SERVICE_USERS[-1]
    nologin = next((s for s in ("/usr/sbin/nologin", "/sbin/nologin") if Path(s).exists()), "")
    args = ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent"]
    if nologin:
        args += ["--shell", nologin]
    proc = subprocess.run([*args, name], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ClusterError(
            f"Could not create the system user {name} to run PostgreSQL (it refuses root):\n"
            f"{proc.stderr.strip()}\nFix: install the postgresql package (it creates 'postgres')."
        )
    return name


def _reachable(path: Path, user: str) -> bool:
    """Whether ``user`` can traverse every existing directory from / down to ``path``.

    Directories that do not exist yet are created world-searchable by ``_make_base``.
    """
    entry = pwd.getpwnam(user)
    gids = set(os.getgrouplist(user, entry.pw_gid))
    for directory in (path, *path.parents):
        try:
            st = directory.stat()
        except FileNotFoundError:
            continue
        except OSError:
            return False
        if st.st_uid == entry.pw_uid:
            bit = 0o100
        elif st.st_gid in gids:
            bit = 0o010
        else:
            bit = 0o001
        if not st.st_mode & bit:
            return False
    return True


def _fallback_note(preferred: Path, fallback: Path) -> str:
    return (
        f"the cluster lives in {fallback} instead of {preferred}: the user PostgreSQL runs as "
        f"cannot reach {preferred.parent}"
    )


def _is_our_postmaster(pid: int, data_dir: Path) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by another user: look at its command line
    if pid == os.getpid():
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no /proc (not Linux): trust the pid
    except OSError:
        return False
    if not argv or not os.path.basename(argv[0]).startswith((b"postgres", b"postmaster")):
        return False
    return os.fsencode(str(data_dir)) in argv


def _locale() -> str:
    """C.UTF-8 when the system has it (Unicode-aware upper/lower for Vietnamese), else C."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["locale", "-a"], capture_output=True, text=True, timeout=10).stdout
        if any(name.lower() in ("c.utf8", "c.utf-8") for name in out.split()):
            return "C.UTF-8"
    return "C"


def kill_postmaster(cluster: LocalCluster) -> int | None:
    """SIGKILL the cluster's postmaster (simulates a crash; for tests). Returns its pid."""
    pid = cluster._postmaster_pid()
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and cluster.is_running():
            time.sleep(0.1)
    return pid
