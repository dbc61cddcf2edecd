"""Apply the warehouse migrations in ``schemas/migrations`` with Alembic."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool

from sdi.settings import Settings, get_settings


def sqlalchemy_url(url: str) -> str:
    """The same URL with SQLAlchemy's driver name: we use psycopg 3 everywhere."""
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def alembic_config(url: str, settings: Settings | None = None) -> Config:
    settings = settings or get_settings()
    config = Config()
    config.set_main_option("script_location", str(settings.home / "schemas" / "migrations"))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return config


def current_revision(url: str) -> str | None:
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(settings: Settings | None = None) -> str | None:
    return ScriptDirectory.from_config(alembic_config("postgresql://", settings)).get_current_head()


def upgrade(url: str, settings: Settings | None = None) -> tuple[str | None, str | None]:
    """Upgrade the database at ``url`` to the newest revision, then give the API and ETL roles
    their privileges on what it now holds (:mod:`sdi.db.roles`); returns (before, after)."""
    import logging

    import psycopg

    from sdi.db.roles import RoleError, apply_grants

    before = current_revision(url)
    command.upgrade(alembic_config(url, settings), "head")
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            apply_grants(conn, settings)
    except (RoleError, psycopg.errors.InsufficientPrivilege) as exc:
        # An external PostGIS whose DBA manages roles: `sdi db grants --print` gives the SQL.
        logging.getLogger(__name__).warning("roles not granted after the migration: %s", exc)
    return before, current_revision(url)
