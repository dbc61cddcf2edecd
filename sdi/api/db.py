"""The API's database access: one connection pool per worker, and its errors as pygeoapi's.

Every part of the API (features, tiles, EDR, the change feed, the catalogue, incidents,
processes, access control, health checks) takes its connections from :func:`pool`, through
:func:`connection` where a failure must reach the client as an OGC exception rather than a
traceback, and maps a database error to a pygeoapi provider error with
:func:`provider_error` (a 400 for what the request got wrong, never the database's text for
what it did not).

When the warehouse is away, every route answers ``503`` with ``Retry-After`` within about a
second (:class:`DatabaseAway`; :func:`is_unavailable` recognises the error wherever it
surfaces), and the service is whole again a few seconds after it is back: connections are
checked before they are handed out, new ones time out after ``SDI_DB_CONNECT_TIMEOUT``, a
request waits ``SDI_DB_POOL_TIMEOUT`` for one, and the pool's reconnection gives up quickly
(the next request starts a fresh attempt) instead of backing off for minutes.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolTimeout
from pygeoapi.provider.base import (
    ProviderConnectionError,
    ProviderInvalidQueryError,
    ProviderQueryError,
)

from sdi import sql as sql_files
from sdi.settings import get_settings

if TYPE_CHECKING:
    from sdi.api import replicas

LOGGER = logging.getLogger(__name__)

_pool: ConnectionPool | None = None
_pool_lock = threading.Lock()
# Seconds the pool keeps retrying a lost connection in the background before giving up; the
# next request that finds the pool empty starts a new attempt at once (so recovery after the
# database comes back takes at most about this long, not psycopg_pool's default 5 minutes
# of exponential backoff).
_RECONNECT_TIMEOUT = 2.0
_AWAY_WAIT = 0.25  # seconds a request waits for a connection while the database is away
UNAVAILABLE_MESSAGE = "the warehouse is not reachable; try again shortly"


class DatabaseAway(ProviderConnectionError):
    """The warehouse cannot be reached: 503 (the server adds ``Retry-After``)."""

    ogc_exception_code = "ServiceUnavailable"
    http_status_code = HTTPStatus.SERVICE_UNAVAILABLE
    default_msg = UNAVAILABLE_MESSAGE


def _causes(exc: BaseException | None, limit: int = 10):
    """``exc`` and the exceptions it was raised from (at most ``limit``)."""
    while exc is not None and limit > 0:
        yield exc
        exc = exc.__cause__ or exc.__context__
        limit -= 1


def connection_lost(exc: BaseException | None) -> psycopg.OperationalError | None:
    """The lost or refused connection ``exc`` was raised from, if any (a statement timeout
    is no lost connection)."""
    for cause in _causes(exc):
        if isinstance(cause, psycopg.OperationalError) and not isinstance(
            cause, psycopg.errors.QueryCanceled
        ):
            return cause
    return None


def is_unavailable(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or an exception it was raised from) says the database is away:
    a lost or refused connection, the pool's timeout, or a :class:`DatabaseAway`."""
    away = any(isinstance(cause, (DatabaseAway, PoolTimeout)) for cause in _causes(exc))
    return away or connection_lost(exc) is not None


class _Pool(ConnectionPool):
    """The pool, remembering whether the last attempt to get a connection failed (so an
    error raised anywhere while the database is away can be answered as a 503)."""

    def getconn(self, timeout: float | None = None) -> psycopg.Connection:
        global _away, _last_try
        if _away:
            # Known away: one request per _AWAY_WAIT waits that long for a connection (and
            # makes the pool try one); the others are answered 503 at once, unless the pool
            # holds a connection (checked before it is handed out).
            now = time.monotonic()
            if now - _last_try < _AWAY_WAIT and not self.get_stats().get("pool_available"):
                raise PoolTimeout("the database is away")
            _last_try = now
            timeout = min(timeout if timeout is not None else self.timeout, _AWAY_WAIT)
        try:
            conn = super().getconn(timeout)
        except psycopg.OperationalError:
            _away, _last_try = True, time.monotonic()
            raise
        _away = False
        return conn


_away = False
_last_try = 0.0


def away() -> bool:
    """True when the last attempt of this worker to get a connection failed."""
    return _away


def retry_after() -> int:
    """Seconds a client is told to wait when the database is away (``Retry-After``)."""
    return get_settings().db_retry_after


def api_url() -> str:
    """The URL the API connects with: ``SDI_API_DATABASE_URL``, else the API role's
    (:mod:`sdi.db.roles`; ``sdi serve`` creates and grants it before the workers start)."""
    from sdi.db.roles import role_url

    return role_url(get_settings(), "api")


def pool() -> ConnectionPool:
    """One bounded, recycled connection pool per worker process (created on first use)."""
    global _pool
    if _pool is not None:
        return _pool
    settings = get_settings()
    with _pool_lock:
        if _pool is None:
            _pool = _Pool(
                api_url(),
                min_size=1,
                max_size=4,
                max_lifetime=1800,
                max_idle=300,
                timeout=settings.db_pool_timeout,
                reconnect_timeout=_RECONNECT_TIMEOUT,
                # A connection the server dropped (restart, failover) is found here, not by
                # the client's request.
                check=ConnectionPool.check_connection,
                kwargs=session_kwargs(),
                name="sdi-api",
                # Do not wait for the first connection: a worker starts while the database
                # is away and answers 503 until it is back.
                open=False,
            )
            _pool.open(wait=False)
            # Close at exit, or the pool's threads hold the process for 5 s each.
            atexit.register(_pool.close)
        return _pool


def session_kwargs() -> dict[str, Any]:
    """The connection settings of every API session, on the primary and on the replicas."""
    settings = get_settings()
    # No server-side prepared statements: a generic plan cannot see the bbox, and
    # planning each time is cheaper than a bad spatial plan. No parallel workers
    # and no JIT: starting either costs more than a whole page of features
    # (PostGIS rates ST_Intersects so dear that the planner reaches for both on a
    # bbox of a few thousand parcels). Figures: docs/api-contract.md, "Speed".
    return {
        "autocommit": True,
        "connect_timeout": max(1, round(settings.db_connect_timeout)),
        "prepare_threshold": None,
        "options": "-c statement_timeout=30000 -c max_parallel_workers_per_gather=0 -c jit=off",
    }


@contextmanager
def connection() -> Iterator[psycopg.Connection]:
    """A pooled connection; an unreachable warehouse is a provider error, not a crash."""
    try:
        with _routed() as conn, _as_personal_reader(conn):
            yield conn
    except psycopg.errors.QueryCanceled as exc:
        raise ProviderQueryError(user_msg="the query took too long; narrow it") from exc
    except psycopg.OperationalError as exc:  # includes the pool's timeout
        global _away
        from sdi.api.replicas import from_replica

        _away = _away or not from_replica(exc)  # a replica lost: the primary still serves
        LOGGER.error("database unavailable: %s", _one_line(exc))
        raise DatabaseAway(user_msg=UNAVAILABLE_MESSAGE) from exc


# The role a request may read personal columns as (``<prefix>_api_personal``): set by
# sdi.api.auth only for a GET of an authorised key on a layer that publishes them.
PERSONAL_READER: ContextVar[str | None] = ContextVar("sdi_personal_reader", default=None)


@contextmanager
def _as_personal_reader(conn: psycopg.Connection) -> Iterator[None]:
    """In such a request, the connection's work in one transaction as that role: ``SET LOCAL``
    ends with the transaction (also when it fails), so the pooled connection is the API
    role's again before anyone else gets it."""
    role = PERSONAL_READER.get()
    if role is None:
        yield
        return
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
        yield


# -- read replicas (sdi.api.replicas) ------------------------------------------------------------
@contextmanager
def read_connection() -> Iterator[psycopg.Connection]:
    """A connection for a read that may come from a replica (errors as psycopg raises them),
    for code that handles them itself instead of :func:`connection`."""
    with _routed() as conn:
        yield conn


def read_router() -> replicas.Router | None:
    """This worker's read router (made, and its replicas checked, on first use)."""
    from sdi.api import replicas

    return replicas.router(api_url, session_kwargs)


@contextmanager
def _routed() -> Iterator[psycopg.Connection]:
    """The routing hook: a read request's connection from a usable read replica when there are
    any, else (and for every write) one from :func:`pool`, the primary's."""
    router = read_router()
    if router is None or not router.has_replicas():
        with pool().connection() as conn:
            yield conn
        return
    with router.connection(pool) as conn:
        yield conn


# ------------------------------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def provider_error(exc: psycopg.Error) -> Exception:
    """The pygeoapi error for a database error: a 400 for what the request got wrong."""
    message = getattr(exc.diag, "message_primary", None) or str(exc)
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return ProviderQueryError(user_msg="the query took too long; narrow it")
    if isinstance(
        exc,
        (
            psycopg.DataError,  # SQLSTATE class 22: a malformed date, a number out of range
            psycopg.errors.SyntaxError,
            psycopg.errors.UndefinedFunction,
        ),
    ):
        return ProviderInvalidQueryError(user_msg=f"invalid query value: {message}")
    if isinstance(exc, psycopg.errors.InternalError_) and (
        "GEOS" in message or "Topology" in message or "geometry" in message.lower()
    ):
        return ProviderInvalidQueryError(
            user_msg=f"the filter's geometry cannot be used: {message}"
        )
    if "SRID" in message and isinstance(exc, psycopg.errors.InternalError_):
        # ST_Transform / ST_SetSRID to a code spatial_ref_sys does not have, from a filter's
        # or a bbox's CRS: the client's mistake, named in PostGIS's message
        return ProviderInvalidQueryError(user_msg=f"unknown coordinate reference system: {message}")
    if is_unavailable(exc):
        LOGGER.error("database unavailable: %s", _one_line(exc))
        return DatabaseAway(user_msg=UNAVAILABLE_MESSAGE)
    LOGGER.error("database error: %s", _one_line(exc))
    return ProviderQueryError(user_msg="the query failed; it has been logged")


def table_columns(conn: psycopg.Connection, table: str) -> dict[str, str]:
    """Every column of a table or view (``schema.name``) and its type as ``format_type``
    writes it, in column order; empty if there is no such relation."""
    rows = conn.execute(sql_files.query("sdi.api", "columns"), {"table": table}).fetchall()
    return dict(rows)


@lru_cache(maxsize=128)
def columns(table: str, published: tuple[str, ...]) -> dict[str, str]:
    """PostgreSQL types of the published columns, in the order they are published (cached:
    pygeoapi builds a provider per request)."""
    with connection() as conn:
        types = table_columns(conn, table)
    if not types:
        raise ProviderConnectionError(user_msg="this collection's table is not available")
    missing = [p for p in published if p not in types]
    if missing:
        raise ProviderConnectionError(
            user_msg="this collection is misconfigured",
            msg=f"{table} has no column(s) {', '.join(missing)}",
        )
    return {name: types[name] for name in published}
