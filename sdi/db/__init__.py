"""The warehouse database: an existing PostGIS named by ``SDI_DATABASE_URL``, or else the
project's own local cluster (``sdi/db/cluster.py``), started on demand.

>>> mask_url("postgresql://sdi:s3cret@127.0.0.1:55432/sdi")
'postgresql://sdi:***@127.0.0.1:55432/sdi'
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg

from sdi.db.cluster import ClusterError, ClusterStatus, LocalCluster
from sdi.settings import Settings, get_settings

__all__ = [
    "ClusterError",
    "ClusterStatus",
    "DatabaseError",
    "LocalCluster",
    "connect",
    "database_url",
    "ensure_database",
    "mask_url",
]


class DatabaseError(ClusterError):
    """The database named by SDI_DATABASE_URL cannot be reached or lacks PostGIS."""


def database_url(settings: Settings | None = None, dbname: str | None = None) -> str:
    """The URL of the warehouse (or of database ``dbname`` on the same server).

    ``settings.database_url`` when set, else the local cluster's
    ``postgresql://user:password@127.0.0.1:port/db``. Starts nothing.
    """
    settings = settings or get_settings()
    if settings.database_url:
        if dbname is None:
            return settings.database_url
        parts = urlsplit(settings.database_url)
        return urlunsplit(parts._replace(path="/" + quote(dbname, safe="")))
    return LocalCluster(settings).url(dbname)


def connect(
    settings: Settings | None = None, *, dbname: str | None = None, **kwargs: Any
) -> psycopg.Connection:
    """A psycopg connection to the warehouse (``kwargs`` go to ``psycopg.connect``).

    Starts nothing: call ``ensure_database`` first (``sdi db start`` does).
    """
    settings = settings or get_settings()
    url = database_url(settings, dbname)
    kwargs.setdefault("connect_timeout", 10)
    try:
        return psycopg.connect(url, **kwargs)
    except psycopg.OperationalError as exc:
        if settings.database_url:
            raise DatabaseError(
                f"Cannot connect to SDI_DATABASE_URL ({mask_url(url)}): {exc}".rstrip()
            ) from exc
        raise ClusterError(
            f"Cannot connect to the local cluster ({mask_url(url)}): {exc}".rstrip()
            + "\nFix: start it with `sdi db start`."
        ) from exc


def ensure_database(settings: Settings | None = None) -> str:
    """Make sure the warehouse database exists, answers and has PostGIS; returns its URL.

    With ``SDI_DATABASE_URL`` only checks (and creates the postgis extension if allowed);
    otherwise starts the local cluster if needed and creates the role, database and extensions.
    """
    settings = settings or get_settings()
    if settings.database_url:
        url = settings.database_url
        with connect(settings, autocommit=True) as conn:
            installed = conn.execute(
                "SELECT 1 FROM pg_extension WHERE extname = 'postgis'"
            ).fetchone()
            if installed is None:
                try:
                    conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
                except psycopg.Error as exc:
                    raise DatabaseError(
                        f"PostGIS is not enabled in {mask_url(url)} and could not be: "
                        f"{str(exc).strip()}\nFix: as a superuser, run "
                        "CREATE EXTENSION postgis; in that database (the postgis package must "
                        "be installed on its server)."
                    ) from exc
        return url
    cluster = LocalCluster(settings)
    cluster.start()
    cluster.ensure_database(settings.db_name)
    return cluster.url(settings.db_name)


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:***@" if parts.username else ":***@"
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=user + host))
