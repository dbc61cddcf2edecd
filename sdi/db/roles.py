"""Database roles by purpose (DESIGN.md "Connections by purpose") and their privileges.

- the **owner** (``settings.db_user``, or the user of ``SDI_DATABASE_URL``) owns the schema and
  runs the migrations;
- ``<prefix>_etl`` writes the warehouse (every table of the warehouse schemas and ``etl``);
- ``<prefix>_api``, the role the OGC API connects as: not a superuser, no CREATE anywhere; it
  reads only what may be shown to anyone — every column of a published relation but the
  layer files' ``personal`` ones (column privileges: ``SELECT owner_name`` or
  ``SELECT applicant_name`` fails even if a bug asks for it), a few columns of the run log for
  lineage and the change feed, the API keys it checks — and writes incident reports and their
  log (and the operations summary they feed);
- ``<prefix>_api_personal`` (NOLOGIN): what ``<prefix>_api`` reads, plus the personal columns a
  keyed internal layer publishes (``publish_personal``: ``applicant_name`` of the permit
  register). ``<prefix>_api`` is a member without inheriting (it is NOINHERIT), so its
  sessions have none of these privileges until they ``SET LOCAL ROLE`` to it — which the API
  does only inside the transaction of a request an authorised key makes to such a layer
  (:func:`sdi.api.db.connection`, :mod:`sdi.api.auth`). Nobody is granted ``owner_name`` or
  the reporters' contacts but the ETL.

``<prefix>`` is ``SDI_DB_ROLE_PREFIX``, by default the database name (``sdi_api`` for the
database ``sdi``), so several databases on one server (test sessions) never share a role.
:func:`ensure_roles` creates the roles (idempotent); their passwords are derived from the
owner's (HMAC-SHA256), or generated into ``<state>/roles/<role>`` (mode 0600) when the owner's
URL has none; :func:`grant_statements` is the SQL of every privilege,
derived from the layer files and the catalog, applied by :func:`apply_grants` after each
migration and at server start (so grants follow new tables), and printed for a DBA by
``sdi db grants --print``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import psycopg
import yaml
from psycopg import sql

from sdi.errors import SdiError
from sdi.settings import Settings, get_settings

# Schemas of the warehouse (migrations 0001..0008): what the ETL writes and the API reads.
WAREHOUSE_SCHEMAS = ("admin", "land", "construction", "utility", "hazard", "planning", "ops")
# SECURITY DEFINER functions of the owner that only the ETL role may call: a province's
# partition made on demand (migration 0012b), the statistics of a loaded table and the
# indexes of an empty one dropped for a bulk load and made again after it (0012d)
ETL_FUNCTIONS = (
    "etl.ensure_province_partition(regclass, text)",
    "etl.analyze(regclass)",
    "etl.suspend_indexes(regclass, text[])",
    "etl.restore_indexes(regclass)",
)
# Run-log columns the API shows (catalogue lineage, change feed); never the rejects or
# contributions, which hold raw rows of the deliveries.
ETL_PUBLIC_COLUMNS = {
    # the provinces a bbox can touch: partition pruning in sdi/api/provider.py
    "etl.partition_extents": ("relation", "province_code", "extent"),
    "etl.runs": (
        "run_id",
        "job",
        "status",
        "started_at",
        "finished_at",
        "rows_read",
        "added",
        "updated",
        "unchanged",
        "retired",
        "rejected",
        "repaired",
        "options",
    ),
    "etl.run_sources": ("run_id", "path", "sha256", "size_bytes"),
}
# What the API writes: incident reports and their append-only log; the operations summary
# and its refresh log, rebuilt after each incident change (sdi.planning.refresh_operations).
API_WRITES = {
    "ops.incidents": ("INSERT", "UPDATE"),
    "ops.incident_log": ("INSERT",),
    "ops.commune_summary": ("INSERT", "DELETE"),
    "planning.refreshes": ("INSERT",),
}
# The API checks keys: their id, hash, department, rights and revocation (not who asked).
API_EXTRA_READS = ("auth.api_keys", "public.layer_styles")
# The rate limits' counters, shared by every server process and instance (sdi.api.limits):
# UNLOGGED (not worth WAL, nor a restore) and created here, with the grants, as the owner.
RATE_COUNTS_DDL = (
    "CREATE UNLOGGED TABLE IF NOT EXISTS auth.rate_counts (client text NOT NULL, "
    "window_start bigint NOT NULL, hits integer NOT NULL, PRIMARY KEY (client, window_start))"
)


class RoleError(SdiError):
    """Roles could not be created or granted; the message says what to do instead."""


@dataclass(frozen=True)
class Roles:
    owner: str
    etl: str
    api: str
    personal: str  # NOLOGIN; the API role switches to it for keyed internal layers


def role_names(settings: Settings | None = None, dbname: str | None = None) -> Roles:
    """The three roles for this database (``dbname`` defaults to the warehouse's)."""
    settings = settings or get_settings()
    from sdi.db import database_url

    url = database_url(settings)
    parts = urlsplit(url)
    owner = unquote(parts.username or settings.db_user)
    name = dbname or unquote(parts.path.lstrip("/")) or settings.db_name
    prefix = settings.db_role_prefix or name
    return Roles(
        owner=owner, etl=f"{prefix}_etl", api=f"{prefix}_api", personal=f"{prefix}_api_personal"
    )


def password_file(settings: Settings, role: str) -> Path:
    return settings.state_dir / "roles" / role


def _password(settings: Settings, role: str, create: bool) -> str | None:
    """The role's password: ``<state>/roles/<role>`` if there is one; else derived from the
    owner's password (HMAC-SHA256: every process and test session that may use the owner's
    URL computes the same one, and the role's password does not give the owner's); else,
    with ``create``, generated and written there (mode 0600)."""
    path = password_file(settings, role)
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        pass
    from sdi.db import database_url

    owner_password = urlsplit(database_url(settings)).password
    if owner_password:
        digest = hmac.new(
            unquote(owner_password).encode(), f"sdi-role:{role}".encode(), hashlib.sha256
        ).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    value = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def role_url(settings: Settings | None, purpose: str) -> str:
    """The URL to connect with for ``purpose`` (``api`` or ``etl``): the explicit setting
    (``SDI_API_DATABASE_URL``, ``SDI_ETL_DATABASE_URL``) if set, else the warehouse URL with
    that role and its password from the state dir. Starts and creates nothing."""
    settings = settings or get_settings()
    explicit = settings.api_database_url if purpose == "api" else settings.etl_database_url
    if explicit:
        return explicit
    from sdi.db import database_url

    roles = role_names(settings)
    role = roles.api if purpose == "api" else roles.etl
    password = _password(settings, role, create=False)
    url = database_url(settings)
    if password is None:
        raise RoleError(
            f"the {purpose} role {role} has no password in {password_file(settings, role)}.\n"
            "Fix: run `sdi db roles` (creates the roles and their grants), or set "
            f"SDI_{purpose.upper()}_DATABASE_URL to a URL of a role with the grants "
            "`sdi db grants --print` lists."
        )
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"{quote(role, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def etl_url(url: str, settings: Settings | None = None) -> str:
    """The URL the ETL connects with to the database of ``url`` (the owner's URL its callers
    hold): ``SDI_ETL_DATABASE_URL`` if set, else the same server and database as the ETL
    role of that database, with its password (derived or from the state dir). ``url`` as is
    only when that role has no password here (an external PostGIS whose DBA manages roles
    and has set no ``SDI_ETL_DATABASE_URL``): then the ETL runs as ``url``'s role, as before."""
    settings = settings or get_settings()
    if settings.etl_database_url:
        return settings.etl_database_url
    parts = urlsplit(url)
    dbname = unquote(parts.path.lstrip("/")) or None
    role = role_names(settings, dbname).etl
    if unquote(parts.username or "") == role:
        return url
    password = _password(settings, role, create=False)
    if password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"{quote(role, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def ensure_roles(conn: psycopg.Connection, settings: Settings | None = None) -> Roles:
    """Create the API and ETL roles, or set their passwords again (idempotent: the same
    derived or stored password). Needs CREATEROLE."""
    settings = settings or get_settings()
    roles = role_names(settings, conn.info.dbname)  # the roles of the database granted on
    for role in (roles.api, roles.etl):
        password = _password(settings, role, create=True)
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        try:  # ALTER sets the same password again (derived, or this state dir's)
            conn.execute(
                sql.SQL(
                    "{} ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD {}"
                ).format(sql.SQL(verb), sql.Identifier(role), sql.Literal(password))
            )
        except psycopg.errors.InsufficientPrivilege as exc:
            raise RoleError(
                f"cannot create role {role}: {exc.diag.message_primary}.\nFix: have a DBA "
                "create the roles (`sdi db grants --print` gives the SQL) and set "
                "SDI_API_DATABASE_URL / SDI_ETL_DATABASE_URL."
            ) from exc
    if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (roles.personal,)).fetchone():
        conn.execute(
            sql.SQL("CREATE ROLE {} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE").format(
                sql.Identifier(roles.personal)
            )
        )
    return roles


def _relations(conn: psycopg.Connection, schemas: Iterable[str]) -> dict[str, list[str]]:
    """Every table and view of ``schemas``: ``schema.name`` → its columns."""
    rows = conn.execute(
        """
        SELECT n.nspname || '.' || c.relname, array_agg(a.attname ORDER BY a.attnum)
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'v', 'm', 'p', 'f')
        GROUP BY 1
        """,
        (list(schemas),),
    ).fetchall()
    return dict(rows)


def _personal(settings: Settings) -> tuple[set[str], dict[str, set[str]]]:
    """Personal column names of every layer file, and per relation the personal columns a
    layer publishes there (``publish_personal``: an internal register).

    Read from the YAML itself (three keys): :mod:`sdi.layers` sits above the database layer,
    and a layer file that does not load is reported by it, not here.
    """
    personal: set[str] = set()
    published: dict[str, set[str]] = {}
    for path in sorted(settings.layers_dir.glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            continue
        names = {str(p) for p in data.get("personal") or []}
        personal |= names
        table = (data.get("source") or {}).get("table")
        if data.get("publish_personal") and table:
            shown = names & {str(p) for p in data.get("properties") or []}
            published.setdefault(str(table), set()).update(shown)
            if str(table).endswith("_current"):  # its versions, read by the change feed
                published.setdefault(str(table).removesuffix("_current"), set()).update(shown)
    return personal, published


def _schemas(conn: psycopg.Connection, names: list[str]) -> list[str]:
    return [
        s
        for (s,) in conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s) ORDER BY nspname", (names,)
        )
    ]


def asks_owner(conn: psycopg.Connection, relation: str, function: str) -> bool:
    """Whether this connection's role must ask the owner's ``function`` (one of
    :data:`ETL_FUNCTIONS`) to act on ``relation``: it does not own the table (the ETL role),
    and the warehouse has the function (else it acts itself, as before migration 0012d)."""
    row = conn.execute(
        "SELECT NOT pg_has_role(c.relowner, 'USAGE') AND to_regprocedure(%s) IS NOT NULL "
        "FROM pg_class c WHERE c.oid = to_regclass(%s)",
        (function, relation),
    ).fetchone()
    return bool(row and row[0])


def grant_statements(conn: psycopg.Connection, settings: Settings | None = None) -> list[str]:
    """The SQL that gives the ETL and API roles exactly their privileges in this database
    (revoking what they had first, so a column that became personal is taken back)."""
    settings = settings or get_settings()
    roles = role_names(settings, conn.info.dbname)
    personal, published = _personal(settings)
    api, etl = sql.Identifier(roles.api), sql.Identifier(roles.etl)
    keyed = sql.Identifier(roles.personal)
    readers = sql.SQL(", ").join([api, keyed])
    schemas = _schemas(conn, [*WAREHOUSE_SCHEMAS, "etl", "auth"])
    out: list[sql.Composable] = []
    database = sql.Identifier(conn.info.dbname)
    out.append(
        sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}, {}").format(database, api, etl)
    )
    if "auth" in schemas:
        out.append(sql.SQL(RATE_COUNTS_DDL))
    relations = _relations(conn, schemas)
    for schema in schemas:
        ident = sql.Identifier(schema)
        out.append(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}, {}").format(ident, readers, etl))
        out.append(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(ident, readers))
        out.append(sql.SQL("REVOKE CREATE ON SCHEMA {} FROM {}").format(ident, readers))
    for schema in [s for s in schemas if s in (*WAREHOUSE_SCHEMAS, "etl")]:
        ident = sql.Identifier(schema)
        out.append(
            sql.SQL(
                "GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA {} TO {}"
            ).format(ident, etl)
        )
        out.append(
            sql.SQL("GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {} TO {}").format(
                ident, etl
            )
        )
    for function in ETL_FUNCTIONS:  # the owner's work the ETL role may ask for
        found = conn.execute("SELECT to_regprocedure(%s) IS NOT NULL", (function,)).fetchone()
        if found and found[0]:
            out.append(sql.SQL("GRANT EXECUTE ON FUNCTION " + function + " TO {}").format(etl))
    for name, columns in sorted(relations.items()):
        schema, table = name.split(".", 1)
        target = sql.Identifier(schema, table)
        if schema == "etl":
            allowed = [c for c in ETL_PUBLIC_COLUMNS.get(name, ()) if c in columns]
            shown = allowed
        elif schema == "auth":
            allowed = columns if name in API_EXTRA_READS else []
            shown = allowed
        else:
            allowed = [c for c in columns if c not in personal]
            # the keyed role also reads the personal columns an internal layer publishes here
            hidden = personal - published.get(name, set())
            shown = [c for c in columns if c not in hidden]
        for role, granted in ((api, allowed), (keyed, shown)):
            if not granted:
                continue
            if len(granted) == len(columns):
                out.append(sql.SQL("GRANT SELECT ON {} TO {}").format(target, role))
            else:
                out.append(
                    sql.SQL("GRANT SELECT ({}) ON {} TO {}").format(
                        sql.SQL(", ").join(map(sql.Identifier, granted)), target, role
                    )
                )
    if "public.layer_styles" in _relations(conn, ["public"]):
        out.append(
            sql.SQL("GRANT SELECT ON {} TO {}").format(
                sql.Identifier("public", "layer_styles"), readers
            )
        )
    for name, privileges in API_WRITES.items():
        if name not in relations:
            continue
        schema, table = name.split(".", 1)
        out.append(
            sql.SQL("GRANT {} ON {} TO {}").format(
                sql.SQL(", ").join(map(sql.SQL, privileges)), sql.Identifier(schema, table), api
            )
        )
    if "auth" in schemas:
        out.append(
            sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(
                sql.Identifier("auth", "rate_counts"), api
            )
        )
    # Asynchronous jobs (sdi.jobs): the API records a job and queues it with procrastinate,
    # whose tables and functions live in the same schema; nothing of the warehouse is there.
    if "jobs" in _schemas(conn, ["jobs"]):
        jobs = sql.Identifier("jobs")
        out += [
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(jobs, api),
            sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {} TO {}").format(
                jobs, api
            ),
            sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}").format(jobs, api),
            sql.SQL("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {} TO {}").format(jobs, api),
        ]
    # The change feed's window ends at the oldest running transaction's start: that column of
    # other roles' sessions is hidden from a plain role (applied only where we may grant it).
    out.append(sql.SQL("GRANT pg_read_all_stats TO {}").format(readers))
    # Membership without inheritance (the API role is NOINHERIT): usable only by SET ROLE.
    out.append(sql.SQL("GRANT {} TO {}").format(keyed, api))
    if "ops" in schemas:
        out.append(
            sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA {} TO {}").format(
                sql.Identifier("ops"), api
            )
        )
    return [statement.as_string(conn) for statement in out]


def apply_grants(conn: psycopg.Connection, settings: Settings | None = None) -> list[str]:
    """Create the roles if needed and apply :func:`grant_statements` in one transaction."""
    settings = settings or get_settings()
    ensure_roles(conn, settings)
    statements = grant_statements(conn, settings)
    with conn.transaction():
        for statement in statements:
            if statement.startswith("GRANT pg_read_all_stats"):
                try:
                    with conn.transaction():
                        conn.execute(statement)
                except psycopg.errors.InsufficientPrivilege:
                    pass  # the change feed then ends its window at now()
                continue
            conn.execute(statement)
    return statements


def prepare(settings: Settings | None = None) -> str:
    """The API's URL, its role created and granted first when we can (the local cluster, or
    ``SDI_DATABASE_URL`` of a role with CREATEROLE); ``SDI_API_DATABASE_URL`` as is."""
    settings = settings or get_settings()
    if settings.api_database_url:
        return settings.api_database_url
    from sdi.db import connect

    with connect(settings, autocommit=True) as conn:
        apply_grants(conn, settings)
    return role_url(settings, "api")


def drop_roles(conn: psycopg.Connection, dbname: str) -> None:
    """Drop the roles of a database that is gone (its privileges went with it)."""
    for role in (f"{dbname}_api", f"{dbname}_api_personal", f"{dbname}_etl"):
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
