"""Reads from hot standbys, writes to the primary, and a client reads its own writes.

With read replicas (``SDI_READ_DATABASE_URLS``, else the local cluster's, ``sdi db replica
add``), :func:`sdi.api.db.connection` hands a ``GET``/``HEAD``/``OPTIONS`` request a
connection to a replica, and any other request (and the change feed, :data:`PRIMARY_READS`)
one to the primary. A write request's answer carries the primary's WAL position after it
(cookie ``sdi_lsn`` and header ``SDI-LSN``); a later read that presents it (cookie, or the
``SDI-LSN`` header) is served by a replica that has replayed that far (waiting at most
``SDI_READ_YOUR_WRITES_WAIT_S``), else by the primary.

A thread per worker process checks each replica every ``SDI_REPLICA_CHECK_INTERVAL_S``: one
that does not answer, is no standby any more, or lags more than ``SDI_REPLICA_MAX_LAG_S``
behind the primary gets no reads until it is back; a request that finds it gone when taking
a connection is served by the primary at once. Lag is measured without clocks: the monitor
samples the primary's WAL position, and a replica's lag is the age of the oldest sample it
has not replayed (0 when it has replayed the newest).

README, "Past one machine"; the figures: bench/replica_reads.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
import re
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field
from http.cookies import SimpleCookie

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from sdi.api.db import connection_lost
from sdi.settings import Settings, get_settings

LOGGER = logging.getLogger(__name__)

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LSN_COOKIE = "sdi_lsn"
LSN_HEADER = b"sdi-lsn"
COOKIE_MAX_AGE = 300  # seconds a client's own write is remembered (then any replica will do)
_RESCAN_S = 2.0  # seconds between two looks for local replicas added or removed
_WAIT_STEP = 0.01  # seconds between two looks at a replica's replay position


def parse_lsn(text: str | None) -> int | None:
    """A ``pg_lsn`` (``16/B374D848``) as an integer; None if it is not one.

    >>> parse_lsn("16/B374D848"), parse_lsn("x"), parse_lsn(None)
    (97500059720, None, None)
    """
    if not text:
        return None
    high, sep, low = text.strip().partition("/")
    try:
        return (int(high, 16) << 32) | int(low, 16) if sep else None
    except ValueError:
        return None


def format_lsn(value: int) -> str:
    """>>> format_lsn(97500059720)
    '16/B374D848'"""
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


# -- the request's intent ------------------------------------------------------------------------
@dataclass
class Intent:
    """What one request may read from, and the WAL position its writes reached."""

    write: bool
    min_lsn: int | None = None
    wrote_lsn: int | None = None
    served_by: set[str] = field(default_factory=set)


_intent: ContextVar[Intent | None] = ContextVar("sdi_replica_intent", default=None)


class ContextExecutor(ThreadPoolExecutor):
    """The event loop's default executor, running each call in the caller's context (as
    anyio's threads do): pygeoapi answers in ``loop.run_in_executor``, and its queries must
    see the request's :class:`Intent`."""

    def submit(self, fn, /, *args, **kwargs):
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)


_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def propagate_context() -> None:
    """Make the running loop's default executor a :class:`ContextExecutor` (once per loop)."""
    loop = asyncio.get_running_loop()
    if loop not in _loops:
        loop.set_default_executor(ContextExecutor(thread_name_prefix="sdi-api"))
        _loops.add(loop)


# Reads that must see the primary: the change feed's watermark is the oldest transaction
# still running on the primary (sdi.api.changes), which a standby cannot see; computed there
# it could pass a version a running load commits later, and the feed would miss it.
PRIMARY_READS = re.compile(r"^/collections/[^/]+/changes/?$")


def begin(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> Intent:
    """Note the request's intent (reads may go to a replica) for the connections it takes;
    called by the outermost middleware (sdi.api.ops) before the request is answered."""
    write = method.upper() not in READ_METHODS or PRIMARY_READS.match(path) is not None
    intent = Intent(write=write, min_lsn=_client_lsn(headers))
    _intent.set(intent)
    return intent


def _client_lsn(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == LSN_HEADER:
            return parse_lsn(value.decode("latin-1"))
    for name, value in headers:
        if name == b"cookie":
            cookie: SimpleCookie = SimpleCookie()
            with contextlib.suppress(Exception):  # a malformed cookie header is no LSN
                cookie.load(value.decode("latin-1"))
            if LSN_COOKIE in cookie:
                return parse_lsn(cookie[LSN_COOKIE].value)
    return None


def response_headers(intent: Intent | None) -> list[tuple[bytes, bytes]]:
    """The headers telling a client where its write reached (none after a read)."""
    if intent is None or intent.wrote_lsn is None:
        return []
    lsn = format_lsn(intent.wrote_lsn).encode()
    cookie = f"{LSN_COOKIE}={lsn.decode()}; Path=/; Max-Age={COOKIE_MAX_AGE}; SameSite=Lax"
    return [(LSN_HEADER, lsn), (b"set-cookie", cookie.encode())]


def from_replica(exc: BaseException) -> bool:
    """Whether ``exc`` is a replica's lost connection (the primary is not away then)."""
    return getattr(connection_lost(exc), "sdi_replica", None) is not None


# -- one replica ------------------------------------------------------------------------------
@dataclass
class Replica:
    """A read replica as this worker sees it."""

    name: str
    url: str
    up: bool = False
    lag_s: float | None = None
    lag_bytes: int | None = None
    replay_lsn: int | None = None
    error: str | None = "not checked yet"
    pool: ConnectionPool | None = None
    monitor: psycopg.Connection | None = None

    def usable(self, max_lag: float) -> bool:
        return self.up and self.lag_s is not None and self.lag_s <= max_lag

    def mark_down(self, why: str) -> None:
        if self.up:
            LOGGER.warning("replica %s skipped: %s", self.name, why)
        self.up, self.error = False, why
        pool, self.pool = self.pool, None
        if pool is not None:  # a new pool is made when it is back (no minutes of backoff)
            threading.Thread(target=pool.close, kwargs={"timeout": 1}, daemon=True).start()

    def close(self) -> None:
        self.mark_down("removed")
        if self.monitor is not None:
            with contextlib.suppress(Exception):
                self.monitor.close()
            self.monitor = None


# -- the router -------------------------------------------------------------------------------
class Router:
    """The replicas of one worker process, their health, and the choice for each read."""

    def __init__(
        self,
        settings: Settings,
        primary_url: str,
        sources: Callable[[], dict[str, str]],
        pool_kwargs: dict[str, object],
    ) -> None:
        self.settings = settings
        self.primary_url = primary_url
        self.sources = sources
        self.pool_kwargs = pool_kwargs
        self.replicas: dict[str, Replica] = {}
        self._primary: psycopg.Connection | None = None
        self._samples: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._scanned = -1e9
        self._thread: threading.Thread | None = None
        self.lost_at = -1e9  # when a request last lost its replica connection mid-query

    # -- monitoring
    def start(self) -> None:
        self.check()
        self._thread = threading.Thread(target=self._run, name="sdi-replicas", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        for replica in list(self.replicas.values()):
            replica.close()

    def _run(self) -> None:
        while not self._stop.wait(self.settings.replica_check_interval_s):
            try:
                self.check()
            except Exception:  # the monitor must outlive any surprise
                LOGGER.exception("replica check failed")

    def check(self) -> None:
        """Look at the primary's WAL position, then at every replica (health and lag)."""
        now = time.monotonic()
        if now - self._scanned >= _RESCAN_S:
            self._scanned = now
            self._rescan()
        if not self.replicas:
            return
        self._sample_primary()
        for replica in list(self.replicas.values()):
            self._check(replica)

    def _rescan(self) -> None:
        try:
            wanted = self.sources()
        except Exception as exc:
            LOGGER.warning("cannot list the read replicas: %s", exc)
            return
        with self._lock:
            for name in set(self.replicas) - set(wanted):
                self.replicas.pop(name).close()
            for name, url in wanted.items():
                if name not in self.replicas or self.replicas[name].url != url:
                    if name in self.replicas:
                        self.replicas.pop(name).close()
                    self.replicas[name] = Replica(name, url)

    def _connect(self, url: str) -> psycopg.Connection:
        # A check must not hang the monitor: 1 s to connect, to answer, and for the server's
        # machine to acknowledge what is sent (a host gone from the network).
        return psycopg.connect(
            url,
            autocommit=True,
            connect_timeout=1,
            application_name="sdi-replica-monitor",
            options="-c statement_timeout=1000",
            tcp_user_timeout=1000,
        )

    def _sample_primary(self) -> None:
        try:
            if self._primary is None or self._primary.closed:
                self._primary = self._connect(self.primary_url)
            row = self._primary.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        except psycopg.Error:
            if self._primary is not None:
                with contextlib.suppress(Exception):
                    self._primary.close()
            self._primary = None
            return  # the primary away: replicas keep their last lag (reads go on)
        lsn = parse_lsn(row[0] if row else None)
        if lsn is None:
            return
        now = time.monotonic()
        if not self._samples or self._samples[-1][1] != lsn:
            self._samples.append((now, lsn))
        horizon = now - max(10.0, 2 * self.settings.replica_max_lag_s)
        while len(self._samples) > 1 and self._samples[0][0] < horizon:
            self._samples.popleft()

    def _check(self, replica: Replica) -> None:
        try:
            if replica.monitor is None or replica.monitor.closed:
                replica.monitor = self._connect(replica.url)
            row = replica.monitor.execute(
                "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text"
            ).fetchone()
        except psycopg.Error as exc:
            if replica.monitor is not None:
                with contextlib.suppress(Exception):
                    replica.monitor.close()
            replica.monitor = None
            replica.mark_down(f"does not answer: {' '.join(str(exc).split())[:200]}")
            return
        if not row or not row[0]:
            replica.mark_down("is not a standby (promoted, or the primary's own URL)")
            return
        replayed = parse_lsn(row[1])
        replica.replay_lsn = replayed
        replica.lag_s, replica.lag_bytes = self._lag(replayed)
        if replica.lag_s is not None and replica.lag_s > self.settings.replica_max_lag_s:
            replica.mark_down(f"lags {replica.lag_s:.1f} s behind the primary")
            replica.error = "lagging"
            return
        if not replica.up:
            LOGGER.warning("replica %s serves reads", replica.name)
        replica.up, replica.error = True, None

    def _lag(self, replayed: int | None) -> tuple[float | None, int | None]:
        if replayed is None:
            return None, None
        if not self._samples:
            return 0.0, None  # primary not sampled (away): the replica is as good as it gets
        newest = self._samples[-1][1]
        if replayed >= newest:
            return 0.0, 0
        behind = next(t for t, lsn in self._samples if lsn > replayed)
        return time.monotonic() - behind, newest - replayed

    # -- choosing
    def has_replicas(self) -> bool:
        return bool(self.replicas)

    def candidates(self, min_lsn: int | None) -> list[Replica]:
        """Usable replicas, those known to have replayed ``min_lsn`` first, in random order."""
        max_lag = self.settings.replica_max_lag_s
        usable = [r for r in list(self.replicas.values()) if r.usable(max_lag)]
        random.shuffle(usable)
        if min_lsn is not None:
            usable.sort(key=lambda r: not (r.replay_lsn is not None and r.replay_lsn >= min_lsn))
        return usable

    def _pool(self, replica: Replica) -> ConnectionPool:
        with self._lock:
            if replica.pool is None:
                replica.pool = ConnectionPool(
                    replica.url,
                    min_size=1,
                    max_size=4,
                    max_lifetime=1800,
                    max_idle=300,
                    timeout=min(0.5, self.settings.db_pool_timeout),
                    reconnect_timeout=2.0,
                    check=ConnectionPool.check_connection,
                    kwargs={**self.pool_kwargs, "connect_timeout": 1},
                    name=f"sdi-replica-{replica.name}",
                    open=False,
                )
                replica.pool.open(wait=False)
            return replica.pool

    def _caught_up(self, conn: psycopg.Connection, lsn: int, deadline: float) -> bool:
        text = format_lsn(lsn)
        while True:
            row = conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (text,)).fetchone()
            if row and row[0]:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(_WAIT_STEP)

    @contextlib.contextmanager
    def connection(self, primary: Callable[[], ConnectionPool]) -> Iterator[psycopg.Connection]:
        """A connection for the current request: a replica's for a read when one is usable
        (and has replayed the client's own write), else the primary's."""
        intent = _intent.get()
        if intent is not None and not intent.write and self.replicas:
            taken = self._take_replica(intent)
            if taken is not None:
                replica, pool, conn = taken
                intent.served_by.add(replica.name)
                try:
                    yield conn
                except BaseException as exc:
                    lost = connection_lost(exc)
                    if lost is not None:  # its next request goes to another, or the primary
                        replica.mark_down(f"lost: {' '.join(str(lost).split())[:200]}")
                        self.lost_at = time.monotonic()
                        with contextlib.suppress(AttributeError):
                            lost.sdi_replica = replica.name  # type: ignore[attr-defined]
                    raise
                finally:
                    pool.putconn(conn)
                return
        source = primary()
        conn = source.getconn()
        if intent is not None:
            intent.served_by.add("primary")
        try:
            yield conn
            if intent is not None and intent.write and self.replicas:
                with contextlib.suppress(psycopg.Error):
                    row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
                    lsn = parse_lsn(row[0] if row else None)
                    if lsn is not None:
                        intent.wrote_lsn = max(lsn, intent.wrote_lsn or 0)
        finally:
            source.putconn(conn)

    def _take_replica(
        self, intent: Intent
    ) -> tuple[Replica, ConnectionPool, psycopg.Connection] | None:
        deadline = time.monotonic() + self.settings.read_your_writes_wait_s
        for replica in self.candidates(intent.min_lsn):
            try:
                pool = self._pool(replica)
                conn = pool.getconn()
            except (psycopg.OperationalError, PoolTimeout) as exc:
                replica.mark_down(f"no connection: {' '.join(str(exc).split())[:200]}")
                continue
            if intent.min_lsn is None:
                return replica, pool, conn
            try:
                if self._caught_up(conn, intent.min_lsn, deadline):
                    return replica, pool, conn
            except psycopg.OperationalError as exc:
                replica.mark_down(f"lost: {' '.join(str(exc).split())[:200]}")
            pool.putconn(conn)
        return None

    # -- reporting
    def report(self) -> dict[str, dict[str, object]]:
        """Each replica's state for /healthz: ``ok``, ``lagging`` or ``down``, and its lag."""
        out: dict[str, dict[str, object]] = {}
        for replica in list(self.replicas.values()):
            state = "ok" if replica.up else ("lagging" if replica.error == "lagging" else "down")
            out[replica.name] = {
                "state": state,
                "lag_seconds": None if replica.lag_s is None else round(replica.lag_s, 3),
                "lag_bytes": replica.lag_bytes,
            }
        return out


# -- this worker's router ------------------------------------------------------------------------
_router: Router | None = None
_router_made = False
_router_lock = threading.Lock()


def configured_sources(settings: Settings, api_url: str) -> Callable[[], dict[str, str]]:
    """Name → URL of the read replicas: ``SDI_READ_DATABASE_URLS`` (named r1, r2, … in
    order), else the local cluster's replicas with the API role's credentials."""
    explicit = settings.read_urls
    if explicit:
        named = {f"r{i}": url for i, url in enumerate(explicit, 1)}
        return lambda: named
    if settings.database_url:
        return dict  # an existing PostgreSQL: its replicas are named explicitly

    from sdi.db.replica import local_replica_ports, with_port

    return lambda: {
        name: with_port(api_url, port) for name, port in local_replica_ports(settings).items()
    }


def router(
    primary_url: Callable[[], str], pool_kwargs: Callable[[], dict[str, object]]
) -> Router | None:
    """This worker's router (started on first use), or None when no replica can exist."""
    global _router, _router_made
    if _router_made:
        return _router
    with _router_lock:
        if not _router_made:
            settings = get_settings()
            url = primary_url()
            made = Router(settings, url, configured_sources(settings, url), pool_kwargs())
            made.start()
            _router, _router_made = made, True
    return _router


def lost_recently(window: float = 2.0) -> bool:
    """Whether a request of this worker lost its replica mid-query in the last ``window``
    seconds: a 500 then is answered 503, which the balancer retries (sdi.api.ops)."""
    return _router is not None and time.monotonic() - _router.lost_at < window


def current() -> Router | None:
    """The router if this worker made one (for /healthz and /metrics; starts nothing)."""
    return _router


def metrics_lines(instance: str) -> bytes:
    """Prometheus text lines of this worker's view of the replicas, labelled by instance."""
    lines = [
        "# HELP sdi_instance_info This API instance (sdi serve --instances)",
        "# TYPE sdi_instance_info gauge",
        f'sdi_instance_info{{instance="{instance}"}} 1',
    ]
    current_router = _router
    if current_router is None or not current_router.replicas:
        return ("\n".join(lines) + "\n").encode()
    lines += [
        "# HELP sdi_replica_up Whether a read replica gets reads (answers, is a standby, "
        "lags less than SDI_REPLICA_MAX_LAG_S)",
        "# TYPE sdi_replica_up gauge",
    ]
    report = list(current_router.replicas.values())
    for replica in report:
        lines.append(
            f'sdi_replica_up{{instance="{instance}",replica="{replica.name}"}} '
            f"{1 if replica.up else 0}"
        )
    lines += [
        "# HELP sdi_replica_lag_seconds How far a read replica is behind the primary",
        "# TYPE sdi_replica_lag_seconds gauge",
    ]
    for replica in report:
        value = "NaN" if replica.lag_s is None else f"{replica.lag_s:.3f}"
        lines.append(
            f'sdi_replica_lag_seconds{{instance="{instance}",replica="{replica.name}"}} {value}'
        )
    lines += [
        "# HELP sdi_replica_lag_bytes WAL bytes a read replica has not replayed",
        "# TYPE sdi_replica_lag_bytes gauge",
    ]
    for replica in report:
        value = "NaN" if replica.lag_bytes is None else str(replica.lag_bytes)
        lines.append(
            f'sdi_replica_lag_bytes{{instance="{instance}",replica="{replica.name}"}} {value}'
        )
    return ("\n".join(lines) + "\n").encode()
