"""Hot standbys of the local cluster: ``sdi db replica add|list|start|stop|remove``.

A replica is a copy of the primary made by ``pg_basebackup -R`` (streaming replication, a
physical replication slot named after it), with its own data directory under
``<cluster>/replicas/<name>`` and its own port, listening on 127.0.0.1 only like the primary.
The API reads from the replicas it finds here (or those of ``SDI_READ_DATABASE_URLS``) and
writes to the primary (sdi.api.replicas). README, "Past one machine".
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from sdi.db.cluster import HOST, ClusterError, LocalCluster
from sdi.settings import Settings, get_settings

NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
PORT_FILE = "port"


def slot_name(name: str) -> str:
    """The primary's replication slot that keeps the WAL replica ``name`` has not received."""
    return f"sdi_replica_{name}"


class Replica(LocalCluster):
    """One local hot standby of ``primary``: its own folder, port and postmaster.

    Shares the primary's superuser and password (a physical copy holds the same roles).
    """

    def __init__(self, primary: LocalCluster, name: str, port: int | None = None) -> None:
        if not NAME.match(name):
            raise ClusterError(
                f"invalid replica name {name!r}: lower-case letters, digits and _, starting "
                "with a letter (at most 31 characters), e.g. r1"
            )
        super().__init__(primary.settings)
        self.primary = primary
        self.name = name
        # Its folder is inside the primary's (reachable by the same service user when root).
        self.__dict__["_layout"] = dataclasses.replace(
            primary._layout, base=primary.replicas_dir / name, note=None
        )
        if port is None:
            try:
                port = int((self.base_dir / PORT_FILE).read_text())
            except (OSError, ValueError):
                raise ClusterError(
                    f"there is no replica {name!r} (see `sdi db replica list`)"
                ) from None
        self.port = port

    @property
    def password_file(self) -> Path:
        return self.primary.password_file

    @property
    def admin_user(self) -> str:
        return self.primary.admin_user

    def _replication_conf(self) -> str:
        # The standby's own copy of the settings: it must match the primary's WAL level and
        # never take writes. Reads running there are not cancelled by replayed cleanup for
        # up to 30 s (hot_standby_feedback tells the primary to keep the rows they see).
        return (
            f"wal_level = {self.primary.wal_level()}\n"
            "hot_standby = on\nhot_standby_feedback = on\n"
            "max_standby_streaming_delay = 30s\nmax_standby_archive_delay = 30s\n"
            "max_wal_senders = 10\nmax_replication_slots = 10\n"
        )

    def _init(self) -> bool:
        if self.is_initialised():
            return False
        raise ClusterError(
            f"replica {self.name!r} has no data directory ({self.data_dir}).\n"
            f"Fix: `sdi db replica remove {self.name}` then `sdi db replica add {self.name}`."
        )

    def url(self, dbname: str | None = None) -> str:
        return with_port(self.primary.url(dbname), self.port)

    def clone(self, timeout: float = 1800.0) -> None:
        """Copy the running primary here with pg_basebackup (-R: a standby that streams from
        it through slot :func:`slot_name`)."""
        with self._lock():
            if self.is_initialised():
                raise ClusterError(f"replica {self.name!r} exists already ({self.data_dir})")
            self._make_dir(self.data_dir, mode=0o700)
            args = [
                str(self.bindir / "pg_basebackup"),
                "-h",
                HOST,
                "-p",
                str(self.primary.port),
                "-U",
                self.primary.admin_user,
                "-D",
                str(self.data_dir),
                "-R",
                "-X",
                "stream",
                "-C",
                "-S",
                slot_name(self.name),
                "--checkpoint=fast",
                "--no-password",
            ]
            proc = self._run(
                args,
                check=False,
                timeout=timeout,
                extra_env={
                    "PGPASSWORD": self.primary.password(),  # -R writes it into primary_conninfo
                    "PGAPPNAME": slot_name(self.name),
                },
            )
            if proc.returncode != 0:
                shutil.rmtree(self.data_dir, ignore_errors=True)
                raise self._error("pg_basebackup failed", proc, show_log=False)
            self._write(self.base_dir / PORT_FILE, f"{self.port}\n", mode=0o644)
            # The copy carries the primary's pid file and sdi.conf: its own are written at start.
            (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
            self._write_config()


@dataclass(frozen=True)
class ReplicaInfo:
    """What ``sdi db replica list`` shows of one replica."""

    name: str
    port: int
    running: bool
    streaming: bool | None
    lag_bytes: int | None
    data_dir: Path


def with_port(url: str, port: int) -> str:
    """``url`` with its port replaced (a replica of a local cluster answers on its own)."""
    parts = urlsplit(url)
    userinfo, _, hostport = parts.netloc.rpartition("@")
    host = hostport.rsplit(":", 1)[0] if ":" in hostport else hostport
    netloc = f"{userinfo}@{host}:{port}" if userinfo else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def replicas(primary: LocalCluster) -> list[Replica]:
    """The local replicas of ``primary``, by name."""
    found = []
    for data in sorted(primary.replicas_dir.glob("*/data/PG_VERSION")):
        name = data.parent.parent.name
        try:
            found.append(Replica(primary, name))
        except ClusterError:
            continue  # an interrupted add: no port file yet
    return found


def local_replica_ports(settings: Settings | None = None) -> dict[str, int]:
    """Name → port of the local cluster's replicas (none with SDI_DATABASE_URL)."""
    settings = settings or get_settings()
    if settings.database_url:
        return {}
    primary = LocalCluster(settings)
    if not primary.replicas_dir.exists():
        return {}
    return {r.name: r.port for r in replicas(primary)}


def _free_port(start: int) -> int:
    for port in range(start, start + 200):
        with socket.socket() as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                continue
            return port
    raise ClusterError(f"no free port in {start}-{start + 199} on {HOST}; give one with --port")


def add(settings: Settings, name: str, port: int | None = None) -> Replica:
    """Make, start and wait for replica ``name`` of the running local cluster.

    The primary's WAL level must allow streaming: a primary still at ``wal_level=minimal``
    is restarted once with ``replica`` (its sessions are rolled back).
    """
    primary = LocalCluster(settings)
    if not primary.is_running():
        raise ClusterError("the local cluster is not running: `sdi db start` first")
    taken = {r.port for r in replicas(primary)} | {primary.port}
    if port is None:
        port = primary.port + 1
        while port in taken:
            port += 1
        port = _free_port(port)
    elif port in taken:
        raise ClusterError(f"port {port} is the primary's or another replica's")
    replica = Replica(primary, name, port)
    if replica.is_initialised():
        raise ClusterError(f"replica {name!r} exists already ({replica.data_dir})")
    replica._make_base()
    primary.allow_replication()  # the replica's folder exists: pg_hba lets it stream
    with primary.connect() as conn:
        level = conn.execute("SHOW wal_level").fetchone()
        senders = conn.execute("SHOW max_wal_senders").fetchone()
    if (level and level[0] == "minimal") or (senders and senders[0] == "0"):
        # The replica's folder exists from here on, so the primary's settings ask for
        # replica WAL (LocalCluster.wal_level); a minimal WAL cannot be streamed.
        primary.stop()
        primary.start()
    _drop_slot(primary, name)  # a slot left by an interrupted add
    try:
        replica.clone()
        replica.start()
        wait_streaming(replica)
    except BaseException:
        remove(settings, name)
        raise
    return replica


def wait_streaming(replica: Replica, timeout: float = 60.0) -> None:
    """Wait until the replica is in recovery and its WAL receiver streams from the primary."""
    deadline = time.monotonic() + timeout
    state: object = None
    while time.monotonic() < deadline:
        try:
            with replica.connect() as conn:
                row = conn.execute(
                    "SELECT pg_is_in_recovery(), (SELECT status FROM pg_stat_wal_receiver)"
                ).fetchone()
            state = row
            if row and row[0] and row[1] == "streaming":
                return
        except psycopg.OperationalError as exc:
            state = exc
        time.sleep(0.2)
    raise ClusterError(
        f"replica {replica.name!r} does not stream from the primary ({state}).\n"
        f"Last lines of {replica.log_file}:\n{replica._log_tail()}"
    )


def info(primary: LocalCluster, replica: Replica) -> ReplicaInfo:
    streaming = lag = None
    if replica.is_running():
        try:
            with replica.connect(connect_timeout=2) as conn:
                row = conn.execute(
                    "SELECT (SELECT status FROM pg_stat_wal_receiver), pg_last_wal_replay_lsn()"
                ).fetchone()
            streaming = bool(row and row[0] == "streaming")
            replayed = row[1] if row else None
            if replayed is not None and primary.is_running():
                with primary.connect(connect_timeout=2) as conn:
                    diff = conn.execute(
                        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", (replayed,)
                    ).fetchone()
                lag = int(diff[0]) if diff and diff[0] is not None else None
        except psycopg.Error:
            streaming = False
    return ReplicaInfo(
        name=replica.name,
        port=replica.port,
        running=replica.is_running(),
        streaming=streaming,
        lag_bytes=lag,
        data_dir=replica.data_dir,
    )


def _drop_slot(primary: LocalCluster, name: str) -> None:
    if not primary.is_running():
        return
    with primary.connect() as conn:
        conn.execute(
            sql.SQL(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                " WHERE slot_name = {} AND NOT active"
            ).format(sql.Literal(slot_name(name)))
        )


def remove(settings: Settings, name: str) -> bool:
    """Stop replica ``name``, delete its folder and drop its slot on the primary. False if
    there was none."""
    primary = LocalCluster(settings)
    if not NAME.match(name):
        raise ClusterError(f"invalid replica name {name!r}")
    base = primary.replicas_dir / name
    if not base.exists():
        return False
    port_file = base / PORT_FILE
    port = int(port_file.read_text()) if port_file.exists() else 0
    replica = Replica(primary, name, port)
    if replica.is_running():
        replica.stop()
    shutil.rmtree(base, ignore_errors=True)
    if replica.socket_dir != base / "run":
        shutil.rmtree(replica.socket_dir, ignore_errors=True)
    # The last one gone: no more replication logins (wal_level goes back at the next start).
    primary.allow_replication()
    # The slot goes last: while it exists, the primary keeps the WAL the standby needs.
    deadline = time.monotonic() + 10
    while True:
        try:
            _drop_slot(primary, name)
            break
        except psycopg.Error:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    return True
