"""The API's database access: one connection pool per worker, and its errors as pygeoapi's.

Every part of the API (features, tiles, EDR, the change feed, the catalogue, incidents,
processes, access control, health checks) takes its connections from :func:`pool`, through
:func:`connection` where a failure must reach the client as an OGC exception rather than a
traceback, and maps a database error to a pygeoapi provider error with
:func:`provider_error` (a 400 for what the request got wrong, never the database's text for
what it did not).
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import psycopg
from psycopg_pool import ConnectionPool
from pygeoapi.provider.base import (
    ProviderConnectionError,
    ProviderInvalidQueryError,
    ProviderQueryError,
)

from sdi import sql as sql_files

LOGGER = logging.getLogger(__name__)

_pool: ConnectionPool | None = None
_pool_lock = threading.Lock()


def pool() -> ConnectionPool:
    """One bounded, recycled connection pool per worker process (created on first use)."""
    global _pool
    if _pool is not None:
        return _pool
    from sdi.db import database_url

    with _pool_lock:
        if _pool is None:
            _pool = ConnectionPool(
                database_url(),
                min_size=1,
                max_size=4,
                max_lifetime=1800,
                max_idle=300,
                timeout=10,
                # No server-side prepared statements: a generic plan cannot see the bbox, and
                # planning each time is cheaper than a bad spatial plan. No parallel workers
                # and no JIT: starting either costs more than a whole page of features
                # (PostGIS rates ST_Intersects so dear that the planner reaches for both on a
                # bbox of a few thousand parcels). Figures: docs/api-contract.md, "Speed".
                kwargs={
                    "autocommit": True,
                    "prepare_threshold": None,
                    "options": "-c statement_timeout=30000 -c max_parallel_workers_per_gather=0"
                    " -c jit=off",
                },
                name="sdi-api",
                open=True,
            )
            # Close at exit, or the pool's threads hold the process for 5 s each.
            atexit.register(_pool.close)
        return _pool


@contextmanager
def connection() -> Iterator[psycopg.Connection]:
    """A pooled connection; an unreachable warehouse is a provider error, not a crash."""
    try:
        with pool().connection() as conn:
            yield conn
    except psycopg.errors.QueryCanceled as exc:
        raise ProviderQueryError(user_msg="the query took too long; narrow it") from exc
    except psycopg.OperationalError as exc:  # includes the pool's timeout
        LOGGER.error("database unavailable: %s", exc)
        raise ProviderConnectionError(user_msg="the warehouse is not reachable") from exc


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
    if isinstance(exc, psycopg.OperationalError):
        LOGGER.error("database unavailable: %s", exc)
        return ProviderConnectionError(user_msg="the warehouse is not reachable")
    LOGGER.error("database error: %s", exc)
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
